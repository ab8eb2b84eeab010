"""No OPC UA sample lost across a kill -9 and restart of the edge agent: the example
plant's mixed line (frame1 on Modbus, fit1 on OPC UA in subscription mode) as real
processes (simulator, edge agent, mosquitto, collector, InfluxDB). After the restart the
new subscription's first notification carries every node's current value with its old
source time, the millisecond of a sample already stored; each seq the edge produced must
still be stored exactly once (docs/edge.md, "Sample times")."""

from __future__ import annotations

import time
from pathlib import Path

from tests.collector.helpers import wait_for
from tests.harness.services import InfluxDB, Mosquitto
from tests.system.chain import Chain, opcua_line


def test_no_opcua_sample_lost_across_an_edge_kill_9(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB) -> None:
    chain = Chain(tmp_path, mosquitto, influxdb, lines=opcua_line).start()
    try:
        wait_for(chain.healthy, 30)
        chain.assert_flowing()  # samples of every machine stored before the kill
        chain.edge.kill()
        chain.edge.start()
        chain.recover(time.monotonic())
        chain.assert_flowing()
        audit = chain.audit()
    finally:
        chain.stop()
    assert "fit1" in audit.per_machine
    assert audit.exactly_once, audit
