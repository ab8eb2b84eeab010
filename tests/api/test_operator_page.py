"""The operator page in a real headless browser (Debian's chromium, tests/harness/
browser.py) on the real chain: simulator (Modbus TCP), edge agent, mosquitto, collector
(InfluxDB, live KPIs), the alarm component and the API. A stop forced on one machine turns
its tile red and appears as an unclassified stop; a click classifies it; the API's
events, the audit and OEE on demand show it. A stop's alarm is listed and acknowledged
with a comment by a click; the alarm's history shows who and why. Screenshots go to the
test artifacts (SHOPFLOOR_TEST_ARTIFACTS, default test-artifacts/) for a human to look
at."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.api.harness import (
    COMMAND_TIMEOUT_S,
    ApiServer,
    create_database,
    load,
    make_keys,
    plant_data,
    wait_for,
)
from tests.api.test_e2e import SimThread, _edge
from tests.harness.browser import browser, offline_requests
from tests.harness.processes import ComponentProcess, health_url

__all__ = ["browser"]  # the fixture, used by name below
ARTIFACTS = Path(os.environ.get("SHOPFLOOR_TEST_ARTIFACTS",
                                Path(__file__).parents[2] / "test-artifacts"))
THRESHOLD_S = 2  # downtime events from 2 s: the test need not wait T_minor
MEETING = "meeting"  # a reason of the example tree whose loss is planned


class Chain:
    def __init__(self, data: dict[str, Any], keys: dict[str, str], api: ApiServer) -> None:
        self.data, self.keys, self.api = data, keys, api

    def client(self, role: str) -> httpx.Client:
        return httpx.Client(base_url=self.api.url, headers={"X-API-Key": self.keys[role]},
                            timeout=30)


@pytest.fixture(scope="module")
def chain(mosquitto: Any, influxdb: Any, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Chain]:
    workdir = tmp_path_factory.mktemp("operator-page")
    keys = make_keys()
    data = plant_data(workdir, mosquitto.port, influxdb.url, keys, timeout_s=COMMAND_TIMEOUT_S)
    data["downtime"]["threshold_s"] = THRESHOLD_S
    # two shifts around the clock, no breaks: tiles show a shift OEE, and no break's
    # planned downtime mixes into what the classification moves
    data["calendar"] = {"timezone": "UTC", "shifts": [
        {"name": "a", "start": "00:00", "end": "12:00"},
        {"name": "b", "start": "12:00", "end": "00:00"}]}
    data["collector"]["kpi_period_s"] = 2
    data["alarms"] = {"defaults": {  # a stop raises its alarm after 1 s
        "machine_stopped": {"after_s": 1, "clear_after_s": 1, "states": ["stopped"]},
        "agent_offline": {"enabled": False}}}
    plant = load(data)
    create_database(influxdb.url, plant.database.database)
    plant_file = workdir / "plant.yaml"
    plant_file.write_text(yaml.safe_dump(data))
    with contextlib.ExitStack() as running:
        collector = ComponentProcess("collector", ["collector", str(plant_file)], workdir,
                                     health_url(data["collector"]["metrics_port"]))
        running.callback(collector.stop)
        collector.start()
        alarms = ComponentProcess("alarms", ["alarms", str(plant_file)], workdir)
        running.callback(alarms.stop)
        alarms.start()
        sim = SimThread(plant).start()
        running.callback(sim.stop)
        edge = _edge(plant)
        running.callback(edge.stop)
        api = ApiServer(plant, data["api"]["port"]).start()
        running.callback(api.stop)
        rig = Chain(data, keys, api)
        with rig.client("operator") as op:
            assert op.post("/api/v1/machines/press1/start").status_code == 200
            wait_for(lambda: all(s["online"] for s in op.get("/api/v1/state").json()["items"]),
                     20, "the edge polling every simulated machine")
        yield rig


# The waits are for real processes on a possibly loaded machine: generous, since a wait
# only lasts that long when something is wrong (the timed-out message names what).
SLACK = 4


def _wait(driver: webdriver.Chrome, timeout_s: float, what: str, css: str) -> Any:
    return WebDriverWait(driver, timeout_s * SLACK).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css)), f"timed out: {what}")


def _click(driver: webdriver.Chrome, css: str, what: str) -> None:
    """Click what `css` finds; the lists are re-drawn every few seconds, so a found
    element may be replaced before the click lands: find it again."""
    def attempt(d: webdriver.Chrome) -> bool:
        try:
            d.find_element(By.CSS_SELECTOR, css).click()
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        return True

    WebDriverWait(driver, 15 * SLACK).until(attempt, f"timed out: {what}")


def _open_line(driver: webdriver.Chrome, chain: Chain) -> None:
    """line1's page on a touch panel's screen, signed in (the key is in session storage)."""
    driver.set_window_size(1280, 800)
    driver.get(f"{chain.api.url}/operator?line=line1")
    _wait(driver, 15, "the tiles", '.tile[data-machine="pack1"]')


def _stop_listed(driver: webdriver.Chrome, op: httpx.Client, machine: str) -> Any:
    """Stop `machine` through the API; its stop as the page lists it, unclassified."""
    assert op.post(f"/api/v1/machines/{machine}/stop").status_code == 200
    return _wait(driver, 20, f"{machine}'s stop",
                 f'#unclassified li[data-event^="{machine}:"]')


def _page_said(driver: webdriver.Chrome) -> str:
    """What the page shows besides the lists: its status line and any error it drew (for
    the message of a wait that timed out)."""
    status = driver.find_element(By.ID, "status").text
    errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".error")]
    return f"page status {status!r}, errors {errors}"


def test_stop_seen_classified_by_click_and_reflected(chain: Chain,
                                                     browser: webdriver.Chrome) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1280, 800)  # the shop-floor touch panel
    browser.get(f"{chain.api.url}/operator?line=line1")
    _wait(browser, 10, "the sign-in form", "#key").send_keys(chain.keys["operator"])
    browser.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    _wait(browser, 15, "the tiles", '.tile[data-machine="pack1"]')
    assert browser.execute_script(
        "return sessionStorage.getItem('shopfloor.apiKey')") == chain.keys["operator"]
    tiles = [t.get_attribute("data-machine") for t in browser.find_elements(By.CSS_SELECTOR,
                                                                             ".tile")]
    assert tiles == ["press1", "weld1", "paint1", "pack1"]  # line1 only, in flow order

    with chain.client("operator") as op:
        assert op.post("/api/v1/machines/press1/stop").status_code == 200
        _wait(browser, 10, "press1's tile turning red",
              '.tile[data-machine="press1"][data-state="stopped"]')
        item = _wait(browser, 20, "the stop among the unclassified",
                     '#unclassified li[data-event^="press1:"]')
        event_id = item.get_attribute("data-event")
        start = dt.datetime.fromisoformat(op.get(f"/api/v1/downtime/events/{event_id}")
                                          .json()["start"])
        window = {"start": start.isoformat(),
                  "end": (start + dt.timedelta(seconds=THRESHOLD_S)).isoformat()}
        before = op.get("/api/v1/machines/press1/oee", params=window).json()["result"]
        browser.save_screenshot(str(ARTIFACTS / "operator-stop.png"))
        _click(browser, f'#unclassified li[data-event="{event_id}"] '
                        f'button.reason[data-reason="{MEETING}"]', "the reason")
        _wait(browser, 15, "the stop under 'entered this shift'",
              f'#classified li[data-event="{event_id}"]')
        assert not browser.find_elements(By.CSS_SELECTOR,
                                         f'#unclassified li[data-event="{event_id}"]')
        browser.save_screenshot(str(ARTIFACTS / "operator-classified.png"))

        event = op.get(f"/api/v1/downtime/events/{event_id}").json()
        assert event["state"] == "stopped" and event["plc_reason"] == "operator_stop"
        assert [(p["reason"], p["loss"], p["by"]) for p in event["parts"]] == [
            (MEETING, "planned", "operator")]
        after = op.get("/api/v1/machines/press1/oee", params=window).json()["result"]
        assert op.post("/api/v1/machines/press1/start").status_code == 200
    # OEE on demand: the classified stop left planned busy time
    assert after["pdot_s"] == pytest.approx(before["pdot_s"] + THRESHOLD_S)
    assert after["pbt_s"] == pytest.approx(before["pbt_s"] - THRESHOLD_S)
    assert before["l1_s"] + before["l3_s"] == pytest.approx(THRESHOLD_S)
    with chain.client("supervisor") as sup:
        entries = wait_for(lambda: sup.get("/api/v1/audit", params={"command_id": event_id})
                           .json()["items"], 10, "the audit entry")
    assert [(e["action"], e["requested_by"]) for e in entries] == [("classify", "operator")]
    assert offline_requests(browser) == []  # nothing from outside the plant network
    browser.set_window_size(390, 844)  # a phone: everything fits the width
    wide = browser.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]")
    browser.save_screenshot(str(ARTIFACTS / "operator-phone.png"))
    assert wide[0] <= wide[1], f"the page is wider than a phone: {wide}"


def test_split_on_the_page_then_classify_each_part(chain: Chain,
                                                   browser: webdriver.Chrome) -> None:
    """A jam that turned into a repair: split where it changed, a reason for each part."""
    _open_line(browser, chain)
    with chain.client("operator") as op:
        item = _stop_listed(browser, op, "weld1")
        event_id = item.get_attribute("data-event")
        start_ms = int(event_id.rsplit(":", 1)[1])
        # the page takes a time of day (the browser's zone), to the second
        browser.execute_script(
            "const input = document.querySelector(`li[data-event='${arguments[0]}'] "
            ".split input`); input.value = new Date(arguments[1]).toTimeString().slice(0, 8);",
            event_id, start_ms + 1500)
        _click(browser, f'li[data-event="{event_id}"] .split button', "the split button")
        _wait(browser, 15, "the second part",
              f'#unclassified li[data-event="{event_id}"] .part[data-part="1"]')
        _click(browser, f'li[data-event="{event_id}"] .part[data-part="0"] '
                        'button[data-reason="jam"]', "jam for the first part")
        _wait(browser, 15, "the first part classified",
              f'#unclassified li[data-event="{event_id}"] .part:not([data-part])')
        _click(browser, f'li[data-event="{event_id}"] .part[data-part="1"] '
                        'button[data-reason="motor"]', "motor for the second part")
        try:
            WebDriverWait(browser, 15 * SLACK).until_not(ec.presence_of_element_located(
                (By.CSS_SELECTOR, f'#unclassified li[data-event="{event_id}"]')))
        except TimeoutException:
            pytest.fail(f"timed out: the split stop leaving the unclassified; "
                        f"{_page_said(browser)}; the API has "
                        f"{op.get(f'/api/v1/downtime/events/{event_id}').json()}")
        _wait(browser, 15, "the event entered", f'#classified li[data-event="{event_id}"]')
        event = op.get(f"/api/v1/downtime/events/{event_id}").json()
        browser.save_screenshot(str(ARTIFACTS / "operator-split.png"))
        assert op.post("/api/v1/machines/weld1/start").status_code == 200
    assert [(p["reason"], p["by"]) for p in event["parts"]] == [
        ("jam", "operator"), ("motor", "operator")]
    cut = dt.datetime.fromtimestamp((start_ms + 1500) // 1000, dt.UTC)  # to the second
    assert event["parts"][1]["start"] == cut.isoformat().replace("+00:00", "Z")


def test_a_half_typed_split_time_is_not_thrown_away(chain: Chain,
                                                    browser: webdriver.Chrome) -> None:
    """The lists are refreshed every 5 s; while someone types in one, it is not redrawn
    (which would empty the field), and it catches up once they leave it."""
    _open_line(browser, chain)
    with chain.client("operator") as op:
        item = _stop_listed(browser, op, "pack1")
        field = item.find_element(By.CSS_SELECTOR, ".split input")
        field.click()
        field.send_keys("10")  # the hours of a split time, the rest not typed yet
        typed = field.get_attribute("value")
        assert browser.execute_script("return document.activeElement") == field
        # something new for the list: weld1 stops too
        assert op.post("/api/v1/machines/weld1/stop").status_code == 200
        wait_for(lambda: any(e["machine"] == "weld1" for e in op.get(
            "/api/v1/downtime/events", params={"line": "line1", "unclassified": "true"}
        ).json()["items"]), 20, "weld1's stop listed by the API")
        refreshes = int(browser.find_element(By.ID, "stops").get_attribute("data-refreshes"))
        WebDriverWait(browser, 15 * SLACK).until(
            lambda d: int(d.find_element(By.ID, "stops").get_attribute("data-refreshes"))
            >= refreshes + 2, "timed out: two refreshes of the lists")
        # the same element, still in the page with what was typed: not redrawn
        assert browser.execute_script("return arguments[0].isConnected", field)
        assert field.get_attribute("value") == typed
        assert not browser.find_elements(By.CSS_SELECTOR,
                                         '#unclassified li[data-event^="weld1:"]')
        browser.find_element(By.TAG_NAME, "h1").click()  # done typing
        _wait(browser, 15, "weld1's stop once nobody types",
              '#unclassified li[data-event^="weld1:"]')
        for machine in ("pack1", "weld1"):
            assert op.post(f"/api/v1/machines/{machine}/start").status_code == 200


def test_alarm_listed_and_acknowledged_on_the_page(chain: Chain,
                                                  browser: webdriver.Chrome) -> None:
    browser.set_window_size(1280, 800)
    browser.get(f"{chain.api.url}/operator?line=line1")  # signed in: session storage
    _wait(browser, 30, "the tiles", '.tile[data-machine="paint1"]')
    item = '#alarm-list li[data-alarm="paint1/machine_stopped"]'
    with chain.client("operator") as op:
        assert op.post("/api/v1/machines/paint1/stop").status_code == 200
        _wait(browser, 30, "paint1's alarm waiting for an ack",
              f'{item}[data-state="active_unack"] button.ack-button')
        browser.find_element(By.CSS_SELECTOR, f"{item} .ack input").send_keys("feeder jam")
        browser.save_screenshot(str(ARTIFACTS / "operator-alarm.png"))
        _click(browser, f"{item} button.ack-button", "Acknowledge")
        _wait(browser, 15, "the alarm acknowledged", f'{item}[data-state="active_ack"]')
        assert not browser.find_elements(By.CSS_SELECTOR, f"{item} button.ack-button")
        history = wait_for(lambda: [t for t in op.get(
            "/api/v1/alarms/history", params={"machine": "paint1"}).json()["items"]
            if t["kind"] == "ack"], 15, "the stored ack")
        assert [(t["by"], t["comment"], t["to_state"]) for t in history] == [
            ("operator", "feeder jam", "active_ack")]
        _wait(browser, 15, "the stored state listed", f'{item}[data-state="active_ack"] .part')
        assert op.post("/api/v1/machines/paint1/start").status_code == 200
    # acknowledged and cleared: back to normal, off the list
    WebDriverWait(browser, 30 * SLACK).until_not(ec.presence_of_element_located(
        (By.CSS_SELECTOR, item)), "timed out: the cleared alarm leaving the list")
    assert offline_requests(browser) == []
