"""`shopfloor local up PLANT` / `shopfloor local down` / `shopfloor local status`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from shopfloor.local import runner
from shopfloor.local.components import Component, plan
from shopfloor.shared.cli import load_or_exit
from shopfloor.shared.plant import Plant

RUN_DIR = click.option(
    "--run-dir", default="run", show_default=True, type=click.Path(file_okay=False),
    help="Folder for logs, data and pid files of this local run.",
)


@click.group()
def local() -> None:
    """Run the whole system on this machine (broker, database, simulated machines, edge
    agents, collector, API) in the background."""


def _start(run: runner.RunDir, component: Component) -> bool:
    click.echo(f"  {component.name:<14} ", nl=False)
    if runner.running(run, component.name) is not None:
        click.echo(f"already running   {component.where}")
        return True
    if component.reuse_if_healthy and component.healthy():
        click.echo(f"found one running, using it   {component.where}")
        return True
    proc = runner.spawn(run, component.name, component.cmdline, component.env)
    outcome = runner.wait_until(component.healthy, component.timeout_s, proc)
    if outcome == "ok":
        click.echo(f"ok   {component.where}")
        return True
    log = run.logs / f"{component.name}.log"
    click.echo(f"FAILED ({outcome}); last lines of {log}:")
    click.echo(runner.tail(log))
    return False


def _where_to_look(plant: Plant, plant_path: Path, run: runner.RunDir) -> str:
    db = plant.database
    return f"""
Where to look:
  logs            {run.logs}/
  live MQTT       mosquitto_sub -p {plant.broker.port} -t 'shopfloor/v1/#' -v
  InfluxDB        influx -port {db.url.rsplit(':', 1)[-1].rstrip('/')} -database {db.database} \
-execute 'SHOW MEASUREMENTS'
  API docs        http://{plant.api.host}:{plant.api.port}/docs
  API             curl -H 'X-API-Key: <key>' http://{plant.api.host}:{plant.api.port}/api/v1/state
                  (the example plant's dev keys are dev-viewer, dev-operator, ... dev-admin)
  OEE             shopfloor oee {plant_path} --machine <id> --start <ISO> --end <ISO>
  dashboards      shopfloor dashboards push --url http://<grafana>:3000 --token <token>
                  (or mount dashboards/provisioning into Grafana; see docs/dashboards.md)
Stop everything this started:  ./dev.sh down   (shopfloor local down --run-dir {run.root})"""


@local.command()
@click.argument("plant", type=click.Path(dir_okay=False, exists=True))
@RUN_DIR
@click.option("--speed", default=1.0, show_default=True, help="Simulator time factor.")
def up(plant: str, run_dir: str, speed: float) -> None:
    """Start what is not running yet and wait until each part is healthy. Safe to repeat."""
    model = load_or_exit(plant)
    run = runner.RunDir(Path(run_dir).resolve())
    run.prepare()
    click.echo(f"Starting shopfloor for site {model.site.id!r} (run folder {run.root}):")
    for component in plan(model, Path(plant).resolve(), run, speed):
        if not _start(run, component):
            click.echo("Stopping: fix the error above, then run again (it is safe to).")
            sys.exit(1)
    click.echo(_where_to_look(model, Path(plant), run))


@local.command()
@RUN_DIR
def down(run_dir: str) -> None:
    """Stop exactly the processes `up` started (newest first); leave everything else."""
    run = runner.RunDir(Path(run_dir).resolve())
    if not run.pids.is_dir():
        click.echo(f"nothing to stop in {run.root}")
        return
    for name in runner.recorded(run):
        click.echo(f"  {name:<14} {'stopped' if runner.stop(run, name) else 'was not running'}")


@local.command()
@RUN_DIR
def status(run_dir: str) -> None:
    """List the processes of the local run and whether they are alive."""
    run = runner.RunDir(Path(run_dir).resolve())
    names = runner.recorded(run) if run.pids.is_dir() else []
    for name in names:
        proc = runner.running(run, name)
        click.echo(f"  {name:<14} {f'running pid {proc.pid}' if proc else 'not running'}")
    if not names:
        click.echo("nothing running")
