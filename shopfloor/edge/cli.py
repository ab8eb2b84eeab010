"""`shopfloor edge PLANT --agent ID`: run one edge agent until SIGTERM / Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from shopfloor.shared.cli import load_or_exit
from shopfloor.shared.errors import ShopfloorError
from shopfloor.shared.logs import setup_logging


@click.command()
@click.argument("plant", type=click.Path(dir_okay=False))
@click.option("--agent", "agent_id", required=True, help="Agent id (agents[].id in PLANT).")
@click.option("--log-level", default=None, help="DEBUG, INFO (default), WARNING, ...")
def edge(plant: str, agent_id: str, log_level: str | None) -> None:
    """Poll the agent's machines over Modbus and publish to MQTT (store-and-forward).

    Samples wait in a SQLite outbox under agents[].state_dir until the broker
    acknowledges them; see docs/edge.md. Stops gracefully on SIGTERM or Ctrl-C.
    """
    setup_logging(log_level)
    model = load_or_exit(plant, isolated=True)  # the YAML parser's garbage stays out
    from shopfloor.edge.agent import EdgeAgent  # noqa: PLC0415 - keep `--help` fast

    try:
        agent = EdgeAgent(model, agent_id)
        asyncio.run(_run(agent))
    except ShopfloorError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


async def _run(agent: object) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await agent.run(stop)  # type: ignore[attr-defined]
