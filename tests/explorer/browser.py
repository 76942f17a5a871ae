"""Debian's Chromium driven headless by selenium through Debian's chromedriver (never a browser
download), for the explorer's browser tests and bench/explorer.py."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"


def missing() -> str | None:
    """Why the browser tests cannot run here, in one line, or None."""
    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        return "needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver (bin/setup does, as root)"
    if not (WEB_DIST / "index.html").exists() or not (WEB_DIST / "app.js").exists():
        return "the explorer is not built: run bin/setup (node web/build.mjs)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium: pip install -e '.[test]'"
    return None


def start_browser(width: int = 1280, height: int = 1600) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        # The test servers' certificates are self-signed on loopback: the browser is told to take
        # them, as a reader accepts a certificate it checked some other way.
        "--ignore-certificate-errors",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or CHROMEDRIVER))


def wait_for_verdict(driver: Any, timeout: float = 60.0) -> str:
    """The page's verdict once it has one (body[data-done]); raises TimeoutError with the page's text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = driver.execute_script("return document.body.dataset.done || null")
        if done:
            return str(done)
        time.sleep(0.05)
    raise TimeoutError(
        f"no verdict within {timeout:.0f} s; the page says: {driver.find_element('tag name', 'main').text[:2000]}"
    )


def rows(driver: Any, selector: str) -> list[dict[str, str]]:
    """The rows of a table as {data-ok, text}."""
    script = f"""return Array.from(document.querySelectorAll({selector!r})).map(r => ({{ok: r.dataset.ok || "", text: r.innerText}}))"""
    return list(driver.execute_script(script))


def checks(driver: Any) -> dict[str, dict[str, str]]:
    script = """return Object.fromEntries(Array.from(document.querySelectorAll('#checks li')).map(li => [li.dataset.check, {ok: li.dataset.ok, reason: li.querySelector('.reason').innerText}]))"""
    return dict(driver.execute_script(script))
