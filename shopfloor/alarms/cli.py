"""`shopfloor alarms PLANT`: run the alarm rule engine until SIGTERM / Ctrl-C."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from shopfloor.shared.errors import PlantFileError
from shopfloor.shared.loader import load_plant
from shopfloor.shared.logs import setup_logging


@click.command()
@click.argument("plant_file", type=click.Path(dir_okay=False))
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING... (default INFO).")
def alarms(plant_file: str, log_level: str | None) -> None:
    """Evaluate the plant file's alarm rules on machine state and agent status; publish
    each alarm retained on MQTT and store its transitions in InfluxDB. docs/alarms.md."""
    setup_logging(log_level)
    try:
        plant = load_plant(plant_file)
    except PlantFileError as exc:
        raise click.ClickException(exc.render()) from None
    from shopfloor.alarms.errors import NotifyError
    from shopfloor.alarms.service import AlarmService

    stop = threading.Event()

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        service = AlarmService(plant)
    except NotifyError as exc:
        raise click.ClickException(str(exc)) from None
    service.run(stop)
