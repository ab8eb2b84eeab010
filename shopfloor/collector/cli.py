"""`shopfloor collector PLANT`: run the collector until SIGTERM / Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from shopfloor.shared.errors import PlantFileError
from shopfloor.shared.loader import load_plant
from shopfloor.shared.logs import setup_logging

log = logging.getLogger(__name__)


@click.command()
@click.argument("plant_file", type=click.Path(dir_okay=False))
@click.option("--metrics-port", type=int, default=None,
              help="Port of /metrics and /healthz (default: collector.metrics_port).")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING... (default INFO).")
@click.option("--kpi/--no-kpi", default=True, show_default=True,
              help="Run the live OEE/WIP engine as a sink of this collector.")
def collector(plant_file: str, metrics_port: int | None, log_level: str | None,
              kpi: bool) -> None:
    """Store telemetry, machine state and agent status from MQTT in InfluxDB.

    Messages are acknowledged to the broker only after they are written; bad payloads
    go to the dead-letter topic. See docs/collector.md.
    """
    setup_logging(log_level)
    try:
        plant = load_plant(plant_file)
    except PlantFileError as exc:
        raise click.ClickException(exc.render()) from None
    from shopfloor.collector.service import Collector

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: flushing and stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    service = Collector(plant)
    if kpi:
        from shopfloor.collector.live_kpi import attach_live_kpi  # docs/oee.md

        attach_live_kpi(service)
    service.start(metrics_port)
    stop.wait()
    service.stop()
