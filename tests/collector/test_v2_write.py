"""The v2 write path (influxdb-client, /api/v2/write) against a real server that speaks
it: VictoriaMetrics. It ignores org, bucket and token, and stores string fields as 0, so
this test checks numeric fields only (each stored as a series `telemetry_<field>`)."""

from __future__ import annotations

import json

import httpx

from shopfloor.collector.encode import FieldKind, field_kind
from shopfloor.shared.influx_v2 import V2Writer
from tests.collector.helpers import (
    Publisher,
    telemetry,
    telemetry_topic,
    value_for,
    wait_for,
)


def export(url: str, site: str) -> dict[tuple[str, str], dict[int, float]]:
    """(metric, machine) -> {timestamp ms: value} for everything of `site`."""
    reply = httpx.get(f"{url}/api/v1/export", params={"match[]": f'{{site="{site}"}}'})
    reply.raise_for_status()
    out: dict[tuple[str, str], dict[int, float]] = {}
    for text in reply.text.splitlines():
        row = json.loads(text)
        key = (row["metric"]["__name__"], row["metric"]["machine"])
        out.setdefault(key, {}).update(zip(row["timestamps"], row["values"], strict=True))
    return out


def test_v2_api_writes_numeric_fields(mosquitto, victoria, make_plant, run_collector):
    plant = make_plant(mosquitto.port, victoria.url)
    collector = run_collector(plant)
    assert isinstance(collector.db.writer, V2Writer)  # auto: /ping has no 1.x version
    pub = Publisher(mosquitto.port)
    try:
        topic = telemetry_topic(plant, "paint1")
        pub.publish_many([(topic, telemetry(plant, "paint1", s).to_json()) for s in range(1, 21)])
    finally:
        pub.close()
    stored = wait_for(lambda: (e := export(victoria.url, plant.site.id))
                      and len(e.get(("telemetry__seq", "paint1"), {})) == 20 and e, 15)
    machine = plant.machines["paint1"]
    for seq in range(1, 21):
        sample = telemetry(plant, "paint1", seq)
        ts_ms = int(sample.ts.timestamp() * 1000)
        assert stored[("telemetry__seq", "paint1")][ts_ms] == seq
        for point in machine.points:
            kind = field_kind(point)
            if kind is FieldKind.STRING:
                continue  # VictoriaMetrics keeps strings as 0
            expected = value_for(machine, point.name, seq)
            got = stored[(f"telemetry_{point.name}", "paint1")][ts_ms]
            assert got == float(expected), point.name
    assert collector.health()[1]["dead_letters"] == 0
