"""The real page in headless Chromium (Debian's ``chromium``, driven by Playwright; no browser download).

Skipped on a developer machine without Chromium; under CI (``CI=true``) a missing browser fails,
since ``.ci/run`` installs it. ``SFUMATO_SCREENSHOT=path.png`` also writes the screenshot there
(the README's is made so).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_artwork

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _require_browser():
    try:
        import playwright  # noqa: F401
    except ImportError:
        playwright = None
    missing = [name for name, ok in (("chromium", CHROMIUM), ("playwright", playwright is not None)) if not ok]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide {', '.join(missing)} (.ci/run installs them)")
        pytest.skip(f"no {', '.join(missing)} on this machine")


def test_preview_in_headless_chromium(tmp_path):
    _require_browser()
    from playwright.sync_api import sync_playwright

    from sfumato.ui import build_app
    from sfumato.ui.app import THEME

    image = (make_artwork(192, 256, seed=4).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    Image.fromarray(image).save(tmp_path / "artwork.png")
    app = build_app()
    app.queue(default_concurrency_limit=2)
    _, url, _ = app.launch(prevent_thread_lock=True, server_name="127.0.0.1", theme=THEME, quiet=True)
    outside = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((url.rstrip("/"), "data:", "blob:")) else None)
            page.goto(url)
            page.locator("input[type=file]").first.set_input_files(str(tmp_path / "artwork.png"))
            page.get_by_role("button", name="Preview").click()
            page.get_by_text("Preview only").wait_for(timeout=120_000)
            page.wait_for_timeout(1500)  # let the images paint
            shot = tmp_path / "app.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        app.close()
    assert Image.open(shot).size[0] >= 1000
    assert not outside, f"the page fetched from outside: {outside[:3]}"
    if os.environ.get("SFUMATO_SCREENSHOT"):
        Path(os.environ["SFUMATO_SCREENSHOT"]).write_bytes(shot.read_bytes())
    assert np.asarray(Image.open(shot)).std() > 5  # not a blank page
