"""Offline by default: what the CLI and the app call first, so that nothing connects anywhere unasked."""

from __future__ import annotations

import os

__all__ = ["stay_offline"]


def stay_offline(online: bool = False) -> None:
    """Make this process connect nowhere: no Gradio analytics, no hub telemetry, no hub downloads.

    With ``online``, models given as hub ids may be downloaded (and, where the caller passes
    ``download=True``, LPIPS's AlexNet weights); otherwise only local files and caches are read.
    Call it before diffusers or huggingface_hub is imported: they read these variables once.
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    if not online:
        os.environ["HF_HUB_OFFLINE"] = "1"
