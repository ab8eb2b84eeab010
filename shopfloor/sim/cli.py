"""`shopfloor sim PLANT` (simulated machines) and `shopfloor generate-plant` (a plant
file of N machines for benchmarks and load tests)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click

from shopfloor.shared.cli import load_or_exit
from shopfloor.shared.logs import setup_logging
from shopfloor.shared.plant import Plant
from shopfloor.sim.errors import SimError
from shopfloor.sim.faults import Fault, parse_assignment

log = logging.getLogger(__name__)


@click.command()
@click.argument("plant", type=click.Path(dir_okay=False))
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Virtual time runs this many times faster than real.",
)
@click.option("--machines", default=None, help="Only these machines (comma-separated ids).")
@click.option("--bind", default=None, help="Listen on this host instead of each connection's.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="MACHINE=MODE",
    help="Start a machine in a fault mode: silent, slow[:SECONDS], exception.",
)
@click.option(
    "--control-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve the HTTP control endpoint (faults, state) on this loopback port.",
)
@click.option(
    "--tick",
    type=click.FloatRange(min=0.005),
    default=None,
    help="Real seconds between register updates [default: 0.1, finer above --speed 10].",
)
@click.option(
    "--origin",
    type=float,
    default=None,
    help="Epoch seconds the machines have been running since (default: now); "
    "`shopfloor local up` backfills the history from then.",
)
def sim(
    plant: str,
    seed: int,
    speed: float,
    machines: str | None,
    bind: str | None,
    faults: tuple[str, ...],
    control_port: int | None,
    tick: float | None,
    origin: float | None,
) -> None:
    """Serve every machine of PLANT as a simulated Modbus TCP device until SIGTERM/SIGINT."""
    setup_logging()
    model = load_or_exit(plant)
    wanted = [m.strip() for m in machines.split(",") if m.strip()] if machines else None
    try:
        fault_list = [parse_assignment(text) for text in faults]
        asyncio.run(_serve(model, seed, speed, wanted, bind, fault_list, control_port, tick,
                           origin))
    except SimError as exc:
        click.echo(f"shopfloor sim: {exc}", err=True)
        sys.exit(1)


async def _serve(
    plant: Plant,
    seed: int,
    speed: float,
    machines: list[str] | None,
    bind: str | None,
    faults: list[tuple[str, Fault]],
    control_port: int | None,
    tick: float | None,
    origin: float | None = None,
) -> None:
    from shopfloor.sim.control import ControlServer
    from shopfloor.sim.simulator import Simulator

    simulator = Simulator(plant, seed, speed, machines=machines, bind=bind, tick_s=tick,
                          origin_s=origin)
    for machine_id, fault in faults:
        simulator.set_fault(machine_id, fault)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await simulator.start()
    control = None
    try:
        if control_port is not None:
            control = ControlServer(simulator, "127.0.0.1", control_port)
        await stop.wait()
        log.info("stopping")
    finally:
        if control is not None:
            control.close()
        await simulator.stop()


@click.command("generate-plant")
@click.option("--machines", "machine_count", type=click.IntRange(1, 100_000), required=True)
@click.option(
    "--points",
    type=click.IntRange(15, 120),
    default=20,
    show_default=True,
    help="Points per machine (the 15 of the example plant, plus analog ones).",
)
@click.option("--lines", "line_count", type=click.IntRange(1), default=1, show_default=True)
@click.option("--base-port", type=click.IntRange(1, 65535), default=5020, show_default=True)
@click.option(
    "--per-port",
    type=click.IntRange(1, 247),
    default=200,
    show_default=True,
    help="Unit ids per port (Modbus unit ids are 1..247).",
)
@click.option("--agents", "agent_count", type=click.IntRange(0), default=1, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--site", default="loadtest", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
def generate_plant(
    machine_count: int,
    points: int,
    line_count: int,
    base_port: int,
    per_port: int,
    agent_count: int,
    host: str,
    site: str,
    output: str,
) -> None:
    """Write a valid plant file of N machines (for benchmarks and load tests)."""
    from shopfloor.sim.generate import GeneratorError, plant_yaml

    try:
        text = plant_yaml(
            machines=machine_count,
            points=points,
            lines=line_count,
            base_port=base_port,
            per_port=per_port,
            agents=agent_count,
            host=host,
            site=site,
        )
    except GeneratorError as exc:
        click.echo(f"shopfloor generate-plant: {exc}", err=True)
        sys.exit(2)
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        click.echo(f"shopfloor generate-plant: cannot write {output}: {exc.strerror}", err=True)
        sys.exit(2)
    click.echo(f"{output}: {machine_count} machine(s) on {line_count} line(s)")
