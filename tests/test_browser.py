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


VISIBLE_PROGRESS = """() => Array.from(document.querySelectorAll('*')).filter(e =>
    e.children.length === 0 && /processing \\|/.test(e.textContent) && e.offsetParent !== null
    && getComputedStyle(e).visibility !== 'hidden' && getComputedStyle(e.parentElement).opacity !== '0').length"""


def test_cloak_and_preview_in_headless_chromium(tmp_path):
    """The page in a real browser: one progress bar while cloaking, the whole image after, the preview labelled.

    With SFUMATO_SCREENSHOT=docs/app.png the two screenshots are kept (docs/app.png, docs/app-running.png).
    """
    _require_browser()
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    from sfumato.ui import build_app
    from sfumato.ui.app import THEME

    image = (make_artwork(384, 512, seed=4).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
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
            page.get_by_role("button", name="Cloak", exact=True).click()
            page.get_by_text("processing |").first.wait_for(timeout=60_000)
            page.wait_for_timeout(1000)
            progress_bars = page.evaluate(VISIBLE_PROGRESS)
            page.screenshot(path=str(tmp_path / "running.png"), full_page=True)
            page.get_by_text("Cloaked 1 image(s).").wait_for(timeout=240_000)
            # the status line can arrive before the browser has decoded the result image
            try:
                page.wait_for_function(
                    "() => Array.from(document.images).some(i => i.complete && i.naturalWidth === 512)", timeout=60_000)
            except PlaywrightTimeout:
                pass  # the assertion below names what the page shows instead
            shown = page.evaluate("() => Array.from(document.images).map(i => [i.naturalWidth, i.naturalHeight])")
            natural = page.evaluate("""() => Array.from(document.images).filter(i => i.naturalWidth === 512)
                .map(i => [i.clientWidth, i.clientHeight, getComputedStyle(i).objectFit])""")
            page.get_by_role("button", name="Preview").click()
            page.get_by_text("Preview only").wait_for(timeout=120_000)
            page.wait_for_timeout(1500)  # let the images paint
            page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
            browser.close()
    finally:
        app.close()
    assert progress_bars == 1, f"{progress_bars} progress bars while cloaking; one is enough"
    assert natural and all(fit in ("contain", "fill", "scale-down") or abs(w / h - 4 / 3) < 0.05
                           for w, h, fit in natural), f"an image is cropped or missing: {natural}; images shown: {shown}"
    assert Image.open(tmp_path / "app.png").size[0] >= 1000
    assert not outside, f"the page fetched from outside: {outside[:3]}"
    if os.environ.get("SFUMATO_SCREENSHOT"):
        target = Path(os.environ["SFUMATO_SCREENSHOT"])
        target.write_bytes((tmp_path / "app.png").read_bytes())
        target.with_name(f"{target.stem}-running{target.suffix}").write_bytes((tmp_path / "running.png").read_bytes())
    assert np.asarray(Image.open(tmp_path / "app.png")).std() > 5  # not a blank page
