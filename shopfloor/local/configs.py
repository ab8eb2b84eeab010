"""Configuration files for the services we run but did not write (mosquitto, InfluxDB 1.x),
used by `shopfloor local up` and by the test harness alike."""

from __future__ import annotations

import getpass
from pathlib import Path

LOOPBACK = "127.0.0.1"


def mosquitto_conf(port: int, data_dir: Path, host: str = LOOPBACK) -> str:
    """Loopback listener, persistence on, queues far above mosquitto's default of 1000
    (an outage of a whole plant must fit), no Nagle delay, run as the current user."""
    return (
        f"listener {port} {host}\n"
        "allow_anonymous true\n"
        "persistence true\n"
        f"persistence_location {data_dir}/\n"
        "autosave_interval 1\n"
        "max_queued_messages 1000000\n"
        "max_queued_bytes 0\n"
        "max_inflight_messages 100\n"
        "message_size_limit 1048576\n"
        "set_tcp_nodelay true\n"  # small QoS 1 messages would otherwise wait ~40 ms (Nagle)
        f"user {getpass.getuser()}\n"
        "log_dest stdout\n"
        "log_type error\nlog_type warning\nlog_type notice\n"
    )


def influxdb_conf(http_port: int, rpc_port: int, data_dir: Path, host: str = LOOPBACK) -> str:
    """InfluxDB 1.x: no phoning home, both listeners on loopback, data under data_dir."""
    return (
        "reporting-enabled = false\n"
        f'bind-address = "{host}:{rpc_port}"\n'
        f'[meta]\n  dir = "{data_dir}/meta"\n'
        f'[data]\n  dir = "{data_dir}/data"\n  wal-dir = "{data_dir}/wal"\n'
        '  query-log-enabled = false\n  index-version = "inmem"\n'
        "[monitor]\n  store-enabled = false\n"
        f'[http]\n  bind-address = "{host}:{http_port}"\n'
        "  log-enabled = false\n  max-body-size = 0\n"
        "[continuous_queries]\n  enabled = false\n"
    )
