"""The harness's services really run: mosquitto carries a message, InfluxDB stores one."""

from __future__ import annotations

import subprocess
import time

import httpx

from tests.harness.services import InfluxDB, Mosquitto, require_binary


def test_mosquitto_round_trip(mosquitto: Mosquitto, unique_site: str) -> None:
    topic = f"shopfloor/v1/{unique_site}/probe"
    # -h 127.0.0.1: on a minimal image without /etc/hosts, the clients' default
    # host name does not resolve.
    pub = [require_binary("mosquitto_pub"), "-h", "127.0.0.1", "-p", str(mosquitto.port),
           "-t", topic]
    sub = subprocess.Popen(
        [require_binary("mosquitto_sub"), "-h", "127.0.0.1", "-p", str(mosquitto.port),
         "-t", topic, "-C", "1", "-W", "10"],
        stdout=subprocess.PIPE,
    )


    time.sleep(0.3)
    subprocess.run([*pub, "-m", "hello", "-q", "1"], check=True)
    out, _ = sub.communicate(timeout=15)
    assert out.strip() == b"hello"


def test_influxdb_write_and_query(influxdb: InfluxDB) -> None:
    httpx.post(f"{influxdb.url}/query", params={"q": "CREATE DATABASE harness"}).raise_for_status()
    r = httpx.post(f"{influxdb.url}/write", params={"db": "harness", "precision": "ms"},
                   content="m v=1i 1000")
    assert r.status_code == 204
    series = influxdb.query("SELECT v FROM m", database="harness")
    assert series[0]["values"] == [[1000, 1]]
