"""sfumato's web app: ``python app.py`` serves it on http://127.0.0.1:7860, offline, on the embedded model."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before Gradio is imported: no calls home

from sfumato.ui import serve

if __name__ == "__main__":
    serve()
