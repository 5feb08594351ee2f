"""``python -m sfumato.cli`` (for ``accelerate launch -m sfumato.cli evaluate ...``)."""

import sys

from . import main

sys.exit(main())
