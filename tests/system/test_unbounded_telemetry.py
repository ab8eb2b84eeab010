"""Unbounded work from one telemetry message (issue 11), on real processes: the collector
(with its live KPI engine) and the API each as `shopfloor ...` processes, a real
mosquitto and InfluxDB, an edge stand-in publishing at QoS 1. The plant keeps the
default admission rule (300 s ahead, 30 days old: docs/mqtt-contract.md, "Admission").

* a sample (or a state) stamped days ahead is dead-lettered with its reason and counted; it reaches
  neither InfluxDB nor the live KPI engine (no KPI record for a future shift), and does
  not freeze the API's live view (later samples still show);
* a sample with thousands of unknown value keys: the keys are dropped and counted by the
  collector and the API, whose live view keeps only the machine's points."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path

import httpx

from shopfloor.shared import topics
from shopfloor.shared.contract import Telemetry
from shopfloor.shared.enums import MachineState
from shopfloor.shared.loader import load_plant
from tests.api.harness import COMMAND_TIMEOUT_S, create_database, make_keys, plant_data
from tests.collector.helpers import (
    Listener,
    Publisher,
    seqs_stored,
    telemetry,
    telemetry_topic,
    wait_for,
)
from tests.collector.helpers import (
    state as state_payload,
)
from tests.harness.plants import write_plant
from tests.harness.processes import ComponentProcess, health_url
from tests.harness.services import InfluxDB, Mosquitto
from tests.system.report import record

MACHINE = "press1"
UNKNOWN_KEYS = 5000


def _metric(url: str, name: str, labels: str = "") -> float:
    """A sample of a Prometheus text page (0 when absent)."""
    text = httpx.get(url, timeout=10).text
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_future_stamps_and_unknown_keys_do_no_unbounded_work(
        mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path) -> None:
    keys = make_keys()
    data = plant_data(tmp_path, mosquitto.port, influxdb.url, keys, COMMAND_TIMEOUT_S)
    data.pop("admission", None)  # the defaults
    data["collector"].update(kpi_period_s=1, rolling_window_s=600)
    plant_file = write_plant(data, tmp_path / "plant.yaml")
    plant = load_plant(plant_file)
    db = plant.database.database
    create_database(influxdb.url, db)
    api_url = f"http://127.0.0.1:{plant.api.port}"
    collector_metrics = f"http://127.0.0.1:{plant.collector.metrics_port}/metrics"
    procs = [
        ComponentProcess("collector", ["collector", str(plant_file)], tmp_path,
                         healthy=health_url(plant.collector.metrics_port)),
        ComponentProcess("api", ["api", str(plant_file)], tmp_path,
                         healthy=health_url(plant.api.port),
                         env={"SHOPFLOOR_API_STATE_DIR": str(tmp_path / "api")}),
    ]
    dead = Listener(mosquitto.port, topics.dead_letter_topic(plant.site.id, "collector"))
    pub = Publisher(mosquitto.port)
    topic = telemetry_topic(plant, MACHINE)
    try:
        for proc in procs:
            proc.start()
        time.sleep(0.5)  # the API's subscription is in place once /healthz answers
        now = dt.datetime.now(dt.UTC)
        for seq in range(1, 6):
            pub.publish(topic, telemetry(plant, MACHINE, seq, now - dt.timedelta(
                seconds=6 - seq)).to_json())
        future = now + dt.timedelta(days=3)
        pub.publish(topic, telemetry(plant, MACHINE, 6, future).to_json())
        after = telemetry(plant, MACHINE, 7, now + dt.timedelta(seconds=1))
        pub.publish(topic, after.to_json())
        junk = {f"junk_{i:05d}": i for i in range(UNKNOWN_KEYS)}
        flood = telemetry(plant, MACHINE, 8, now + dt.timedelta(seconds=2))
        pub.publish(topic, Telemetry(ts=flood.ts, seq=8,
                                     values={**flood.values, **junk}).to_json())

        state_topic = topics.machine_topic(plant.site.id, "line1", MACHINE, topics.STATE)
        for kind, since in ((MachineState.RUNNING, now - dt.timedelta(seconds=10)),
                            (MachineState.STOPPED, future),  # would hold durations back
                            (MachineState.IDLE, now)):
            pub.publish(state_topic, state_payload(kind, since, reason="jam").to_json())

        with httpx.Client(base_url=api_url, headers={"X-API-Key": keys["viewer"]},
                          timeout=10) as api:
            def live_state() -> dict | None:
                body = api.get(f"/api/v1/machines/{MACHINE}/state").json()
                return body if body.get("updated_at", "").startswith(
                    flood.ts.isoformat()[:19]) else None

            state = wait_for(live_state, 20)  # not frozen at the future sample
            assert set(state["values"]) <= {p.name for p in plant.machines[MACHINE].points}
            assert state["values"] == {k: v for k, v in flood.values.items()}
            api_metrics = f"{api_url}/metrics"
            assert _metric(api_metrics, "shopfloor_api_live_refused",
                           '{reason="future_ts"}') == 2  # the sample and the state
            assert wait_for(lambda: api.get(f"/api/v1/machines/{MACHINE}/state").json()
                            .get("state") == "idle", 20)
            assert _metric(api_metrics, "shopfloor_api_live_unknown_values") == UNKNOWN_KEYS

        wait_for(lambda: _metric(collector_metrics, "shopfloor_collector_dead_letters_total",
                                 '{reason="future_ts"}') == 2, 20)  # sample and state
        assert _metric(collector_metrics,
                       "shopfloor_collector_unknown_values_total") == UNKNOWN_KEYS
        reasons = [json.loads(m.payload)["reason"] for m in dead.messages]
        assert any(r.startswith("future_ts: ts 2") for r in reasons), reasons
        unknown = [r for r in reasons if r.startswith("point: ")]
        assert len(unknown) == 1 and unknown[0].endswith(f"and {UNKNOWN_KEYS - 20} more")

        def kpi_written() -> bool:  # the live KPI engine ticked on the stored samples
            rows = influxdb.query('SELECT count("end_ms") FROM "oee"', database=db)
            return bool(rows)

        wait_for(kpi_written, 30)
        time.sleep(2.5)  # a few more ticks: any future record would be there by now
        ahead = f"time > {int((now + dt.timedelta(minutes=10)).timestamp())}s"
        for measurement in ("telemetry", "oee", "oee_rollup", "wip", "machine_state",
                            "state_duration"):
            rows = influxdb.query(f'SELECT * FROM "{measurement}" WHERE {ahead}', database=db)
            assert rows == [], (measurement, rows[:1])
        assert seqs_stored(influxdb, db, MACHINE) == [1, 2, 3, 4, 5, 7, 8]
        durations = influxdb.query(f"SELECT * FROM state_duration WHERE machine = "
                                   f"'{MACHINE}'", database=db)
        assert durations, "the idle state did not end the running one: durations frozen"
        for proc in procs:
            assert proc.alive, proc.log_tail()
        record("unbounded", input="one telemetry message and one state stamped 3 days "
                                  "ahead",
               outcome="collector: dead letters `future_ts`, not stored, seq/durations/KPI "
                       "watermark untouched; live KPI: no record after now + 10 min; API "
                       "live view: refused and counted, the next samples and states show")
        record("unbounded", input=f"one telemetry message with {UNKNOWN_KEYS:,} unknown "
                                  "value keys",
               outcome=f"collector: {UNKNOWN_KEYS:,} counted, one `point` dead letter naming "
                       "20; API live view keeps only the machine's points, counts the rest")
    finally:
        pub.close()
        dead.close()
        for proc in reversed(procs):
            proc.stop()
