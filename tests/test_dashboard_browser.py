"""The dashboard page in a real browser: headless Chromium (Debian ``chromium``) driven by Playwright.

The demo publishes through mosquitto at 6× (its first slouch alert comes about 100 simulated
seconds in, ~17 s of wall time); the dashboard subscribes to the same broker. The page must show
angle values that change, the posture, the alert banner after the slouch, send ``cmd/calibrate``
when the button is clicked, and grey out when the wearer goes offline.

``SENSORHUB_UPDATE_SCREENSHOT=1`` also writes ``docs/dashboard.png`` (the README's picture).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from brokers import BrokerHandle, Subscriber
from matplotlib import image as mpimg
from playwright.async_api import ConsoleMessage, Page, async_playwright

from sensorhub.dashboard.server import Dashboard, DashboardSettings, broker_config
from sensorhub.runner import DemoOptions, run_demo

CHROMIUM_PLACES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "dashboard.png"
SCREENSHOT_MAX_BYTES = 300_000
SPEED = 6.0


def find_chromium() -> str:
    """The system Chromium; fails the test (never skips) when it is not installed."""
    found = shutil.which("chromium") or next((p for p in CHROMIUM_PLACES if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.fail(
            "chromium is not installed (looked on PATH and in " + ", ".join(CHROMIUM_PLACES) + "); "
            "install the Debian package 'chromium' (.ci/run does)",
            pytrace=False,
        )
    return found


async def text_of(page: Page, selector: str) -> str:
    return (await page.text_content(selector) or "").strip()


async def wait_text_changes(page: Page, selector: str, old: str, timeout_ms: float) -> str:
    await page.wait_for_function(
        "([sel, old]) => { const t = document.querySelector(sel).textContent.trim(); return t !== old && t !== '–'; }",
        arg=[selector, old],
        timeout=timeout_ms,
    )
    return await text_of(page, selector)


def check_screenshot(path: Path) -> None:
    """Not blank: the pixels vary, and the page's colours (traces, banner) are there."""
    pixels = np.asarray(mpimg.imread(path))[..., :3]
    assert pixels.std() > 0.05, f"the screenshot {path} looks blank (pixel std {pixels.std():.3f})"
    reddish = (pixels[..., 0] > 0.6) & (pixels[..., 1] < 0.35) & (pixels[..., 2] < 0.35)
    assert reddish.sum() > 2000, "no red alert banner in the screenshot"


async def test_live_page_in_chromium(mosquitto: BrokerHandle, tmp_path: Path) -> None:
    chromium = find_chromium()
    demo_options = DemoOptions(
        speed=SPEED, broker=mosquitto.url, dashboard=False, out_dir=tmp_path / "out", db=tmp_path / "s.db"
    )
    settings = DashboardSettings(mqtt=broker_config(mosquitto.url), port=0, db=tmp_path / "s.db")
    console_errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    async with (
        Dashboard(settings) as dashboard,
        Subscriber(mosquitto, "sensorhub/demo/cmd/#") as commands,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(executable_path=chromium, headless=True)
        demo = asyncio.create_task(run_demo(demo_options), name="demo")
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("console", on_console)
            page.on("pageerror", lambda exc: console_errors.append(str(exc)))
            await page.goto(f"{dashboard.url}w/demo")

            # Values arrive and change; the posture is shown; the page is live (not greyed out).
            first = await wait_text_changes(page, "#thoracic-value", "–", 15_000)
            await wait_text_changes(page, "#thoracic-value", first, 5_000)
            await wait_text_changes(page, "#trunk-value", "–", 5_000)
            await page.wait_for_function(
                "() => document.querySelector('#posture').dataset.posture !== ''", timeout=10_000
            )
            assert await page.locator("body.stale").count() == 0, await text_of(page, "#stale-banner")
            assert await page.get_attribute("#posture", "data-posture") in (
                "upright", "slouched", "leaning_forward", "reclined", "standing", "moving", "exercising",
                "uncalibrated", "unknown",
            )  # fmt: skip

            # The overview lists the wearer.
            overview = await browser.new_page()
            await overview.goto(dashboard.url)
            await overview.wait_for_selector('[data-testid="wearer-card"][data-wearer="demo"]', timeout=5_000)
            await overview.close()

            # The slouch: the banner comes up, the posture says so.
            await page.wait_for_selector("#alert-banner:not([hidden])", timeout=40_000)
            assert "Slouching" in await text_of(page, "#alert-banner")
            await page.wait_for_timeout(600)  # one more trace frame
            for selector in ("#posture", "#thoracic-value", "#lumbar-value", "#traces", "#btn-calibrate", "#sensors"):
                assert await page.locator(selector).is_visible(), selector
            painted = await page.evaluate(
                """() => { const c = document.querySelector('#traces');
                           const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                           let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
            )
            assert painted > 5000, "the traces canvas is empty"
            shot = tmp_path / "dashboard.png"
            await page.screenshot(path=str(shot))
            check_screenshot(shot)
            if os.environ.get("SENSORHUB_UPDATE_SCREENSHOT") == "1":
                DOCS_SCREENSHOT.write_bytes(shot.read_bytes())
                assert DOCS_SCREENSHOT.stat().st_size <= SCREENSHOT_MAX_BYTES

            # Calibrate: the button publishes cmd/calibrate.
            await page.click("#btn-calibrate")
            [command] = await commands.wait_for(1, topic="sensorhub/demo/cmd/calibrate", timeout=5)
            assert command.json() == {"functional": False}
            assert not command.retain
            await page.wait_for_function(
                "() => document.querySelector('#command-result').textContent.startsWith('calibrate sent')",
                timeout=5_000,
            )

            # The wearer stops: 'offline', the page greys out and says so.
            demo.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await demo
            await page.wait_for_selector("body.stale #stale-banner:not([hidden])", timeout=10_000)
            assert "offline" in await text_of(page, "#stale-banner")
            assert console_errors == [], console_errors  # no script error, no CSP violation
        finally:
            demo.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await demo
            await browser.close()
