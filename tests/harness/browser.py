"""A real headless browser for tests: Debian's `chromium` driven through Debian's
`chromium-driver` by selenium (both installed by ./dev.sh test; never a downloaded
browser or driver). The browser is offline: every request that is not to a loopback
address goes to a proxy that does not exist, so a page that needs the internet (a CDN)
fails visibly. `offline_requests(driver)` lists what a page tried to load from elsewhere.

Use the `browser` fixture (a `selenium.webdriver.Chrome`, one per test session; tests
that need it import it from here in their conftest.py or test module)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.harness.services import require_binary

DEAD_PROXY = "http://127.0.0.1:9"
"""Nothing listens on the discard port: requests through the proxy fail at once. Chromium
never sends loopback requests through a proxy, so local servers stay reachable."""


def chrome_options() -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = require_binary("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--proxy-server={DEAD_PROXY}", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,1024"):
        options.add_argument(arg)
    return options


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    os.environ["SE_OFFLINE"] = "true"  # selenium must never fetch a driver or a browser
    service = Service(executable_path=require_binary("chromedriver"))
    driver = webdriver.Chrome(options=chrome_options(), service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


NEEDED = ("script", "link", "css", "fetch", "xmlhttprequest", "navigation")
"""Resource kinds a page needs to work (a decorative image is not among them)."""


def offline_requests(driver: webdriver.Chrome, kinds: tuple[str, ...] = NEEDED) -> list[str]:
    """URLs of the `kinds` of resources the current page loaded (or tried to) that are not
    on a loopback address."""
    urls: list[str] = driver.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => arguments[0].includes(e.initiatorType)).map(e => e.name)"
        ".concat([location.href])", list(kinds))
    local = ("http://127.0.0.1", "https://127.0.0.1", "http://[::1]", "data:", "blob:")
    return [u for u in urls if not u.startswith(local)]
