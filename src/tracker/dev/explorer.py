"""The explorer page in a headless browser: Debian's Chromium driven by selenium through Debian's
chromedriver (never a browser download), for the demo's screenshot, the browser tests and
bench/explorer.py.

The page says it is done by setting `data-done` on its body (the verdict) and `data-seconds`
(from opening the protocol to the verdict, measured by the page itself).
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def built_explorer(project_root: Path) -> Path:
    """Where bin/setup builds the explorer (web/build.mjs)."""
    return project_root / "web" / "dist"


def missing(project_root: Path) -> str | None:
    """Why the page cannot be opened in a browser here, in one line, or None."""
    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        return "needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver (bin/setup does, as root)"
    dist = built_explorer(project_root)
    if not (dist / "index.html").exists() or not (dist / "app.js").exists():
        return "the explorer is not built: run bin/setup (node web/build.mjs)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium: pip install -e '.[test]'"
    return None


def page_url(origin: str, protocol_url: str, rpc_url: str, contract: str | None = None) -> str:
    """The explorer under `origin` opened on a protocol, reading the chain through `rpc_url`."""
    query = {"rpc": rpc_url} | ({"contract": contract} if contract else {})
    return f"{origin.rstrip('/')}/explorer/?{urllib.parse.urlencode(query)}#{protocol_url}"


def start_browser(width: int = 1280, height: int = 1600) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for Chromium's sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        # The local servers' certificates are self-signed on loopback: the browser is told to take
        # them, as a reader takes a certificate it has checked some other way.
        "--ignore-certificate-errors",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@dataclass(frozen=True)
class PageVerdict:
    verdict: str
    seconds: float  # as the page measured it, from the protocol's fetch to its verdict


def wait_for_verdict(driver: Any, timeout: float = 120.0) -> PageVerdict:
    """The page's verdict once it has one; TimeoutError with the page's text otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = driver.execute_script("return [document.body.dataset.done || null, document.body.dataset.seconds]")
        if done[0]:
            return PageVerdict(str(done[0]), float(done[1]))
        time.sleep(0.05)
    text = driver.find_element("tag name", "main").text[:2000]
    raise TimeoutError(f"the explorer gave no verdict within {timeout:.0f} s; the page says: {text}")


def screenshot(url: str, path: Path, timeout: float = 120.0) -> PageVerdict:
    """Opens `url`, waits for the verdict and saves the whole page as a PNG at `path`."""
    driver = start_browser()
    try:
        driver.get(url)
        verdict = wait_for_verdict(driver, timeout)
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        driver.set_window_size(1280, min(max(height, 800), 6000))
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
        return verdict
    finally:
        driver.quit()
