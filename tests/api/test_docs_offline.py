"""/docs (Swagger UI) and /redoc (ReDoc) render the API's operations in a real headless
Chromium with no internet: every script and style comes from the installed package."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.harness.browser import browser, offline_requests  # noqa: F401 (fixture)


def assert_docs_render(driver, base: str) -> None:  # type: ignore[no-untyped-def]
    """Swagger UI lists an operation per route and ReDoc shows them too, offline."""
    routes = [p for p in httpx.get(f"{base}/openapi.json", timeout=10).json()["paths"]]
    driver.get(f"{base}/docs")
    WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR,
                                                                    ".opblock")))
    shown = {e.text for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {r.replace("{", "").replace("}", "") for r in routes} <= {
        s.replace("\u200b", "").replace("{", "").replace("}", "") for s in shown}
    assert offline_requests(driver) == []
    driver.get(f"{base}/redoc")
    WebDriverWait(driver, 30).until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, "[data-section-id^='operation/']")))
    operations = driver.find_elements(By.CSS_SELECTOR, "[data-section-id^='operation/']")
    assert len(operations) >= len(routes)
    # ReDoc's "API docs by Redocly" footer logo is the one thing it links from a CDN: a
    # missing image offline, nothing the page needs.
    assert offline_requests(driver) == []


def test_docs_and_redoc_render_offline(api_env, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert_docs_render(browser, api_env.api.url)
