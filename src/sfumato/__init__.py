"""sfumato: protect artwork from AI style mimicry.

The core works on tensors in [0, 1]: :func:`cloak_image` cloaks one image with
a loaded encoder, a style target and a perceptual metric; :class:`Cloaker` loads
those once and cloaks batches. Files and the CLI are thin layers on top.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sfumato")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"

from .api import Cloaker
from .cloak import CloakResult, cloak_image
from .config import INTENSITY_PRESETS, QUALITY_PRESETS, CloakConfig, resolve_config

__all__ = [
    "Cloaker",
    "CloakConfig",
    "CloakResult",
    "INTENSITY_PRESETS",
    "QUALITY_PRESETS",
    "cloak_image",
    "resolve_config",
    "__version__",
]
