"""`shopfloor local up PLANT` / `shopfloor local down` / `shopfloor local status`."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import click
import psutil

from shopfloor.local import backfill, demo, grafana, runner
from shopfloor.local.components import Component, plan, with_origin
from shopfloor.shared.cli import load_or_exit
from shopfloor.shared.plant import Plant

FOREIGN = ("mosquitto", "influxdb")
"""Started first (the history needs the database) and stopped last (our components
flush into them while they stop)."""

RUN_DIR = click.option(
    "--run-dir", default="run", show_default=True, type=click.Path(file_okay=False),
    help="Folder for logs, data and pid files of this local run.",
)


@click.group()
def local() -> None:
    """Run the whole system on this machine (broker, database, simulated machines, edge
    agents, collector, API) in the background."""


def _launch(run: runner.RunDir, component: Component) -> psutil.Process | None:
    """Spawn the component unless it runs already (or, for a broker or database, one
    answers on its port): then say so and return None."""
    if runner.running(run, component.name) is not None:
        click.echo(f"  {component.name:<14} already running   {component.where}")
        return None
    if component.reuse_if_healthy and component.healthy():
        click.echo(f"  {component.name:<14} found one running, using it   {component.where}")
        return None
    return runner.spawn(run, component.name, component.cmdline, component.env)


def _await(run: runner.RunDir, component: Component, proc: psutil.Process | None) -> None:
    """Wait until a launched component is healthy; stop `up` if it is not."""
    if proc is None:
        return
    outcome = runner.wait_until(component.healthy, component.timeout_s, proc)
    if outcome == "ok":
        click.echo(f"  {component.name:<14} ok   {component.where}")
        return
    click.echo(f"  {component.name:<14} FAILED ({outcome}); last lines of its logs:")
    click.echo(runner.tail_logs(run, component.name))
    click.echo("Stopping: fix the error above, then run again (it is safe to).")
    sys.exit(1)


def _start(run: runner.RunDir, component: Component) -> None:
    _await(run, component, _launch(run, component))


def _where_to_look(plant: Plant, plant_path: Path, run: runner.RunDir) -> str:
    db = plant.database
    api = f"http://{plant.api.host}:{plant.api.port}"
    return f"""
Where to look (`./dev.sh shopfloor ...` runs the venv's shopfloor command; or
`. .venv/bin/activate` first and type `shopfloor ...`):
  logs            {run.logs}/
  live MQTT       mosquitto_sub -h 127.0.0.1 -p {plant.broker.port} -t 'shopfloor/v1/#' -v
  InfluxDB        influx -host 127.0.0.1 -port {db.url.rsplit(':', 1)[-1].rstrip('/')} \
-database {db.database} -execute 'SHOW MEASUREMENTS'
  API docs        {api}/docs
  API             curl -H 'X-API-Key: <key>' {api}/api/v1/state
                  (the example plant's dev keys are dev-viewer, dev-operator, ... dev-admin)
  OEE             ./dev.sh shopfloor oee {plant_path} --machine <id>   (the current shift)
  dashboards      {_grafana_hint(run)}
  status          ./dev.sh status
Stop everything this started:  ./dev.sh down   (shopfloor local down --run-dir {run.root})"""


def _grafana_hint(run: runner.RunDir) -> str:
    if runner.running(run, "grafana") is not None:
        return f"http://127.0.0.1:{grafana.GRAFANA_PORT}  (folder shopfloor)"
    return grafana.HOW_TO_GET


@local.command()
@click.argument("plant", type=click.Path(dir_okay=False, exists=True))
@RUN_DIR
@click.option("--speed", default=1.0, show_default=True, help="Simulator time factor.")
@click.option("--history-hours", default=backfill.DEFAULT_HOURS, show_default=True,
              type=click.FloatRange(min=0), envvar="SHOPFLOOR_HISTORY_HOURS",
              help="Hours of simulated history to bring in first (at least the current "
              "shift so far) when the database has none; 0: none.")
@click.option("--seed", default=0, show_default=True, help="Simulator random seed.")
def up(plant: str, run_dir: str, speed: float, history_hours: float, seed: int) -> None:
    """Start what is not running yet and wait until each part is healthy. Safe to repeat."""
    model = load_or_exit(plant)
    run = runner.RunDir(Path(run_dir).resolve())
    run.prepare()
    click.echo(f"Starting shopfloor for site {model.site.id!r} (run folder {run.root}):")
    parts = plan(model, Path(plant).resolve(), run, speed, seed)
    for component in [c for c in parts if c.name in FOREIGN]:  # the history needs them
        _start(run, component)
    history = _history_plan(model, run, history_hours if speed == 1.0 else 0.0)
    if history.wanted:
        parts = [with_origin(c, history.origin_s) if c.name == "sim" else c for c in parts]
    edges = [c for c in parts if c.name.startswith("edge-")]
    # The other parts start while the history is brought in (it keeps one core busy);
    # the edge agents after it (they own the outbox it fills) and after the collector
    # (its persistent session must exist before the first telemetry is published).
    launched = [(c, _launch(run, c)) for c in parts
                if c.name not in FOREIGN and not c.name.startswith("edge-")]
    if history.wanted:
        _bring_history(model, seed, history)
    for component, proc in launched:
        _await(run, component, proc)
    for component in edges:
        _start(run, component)
    if history.wanted:
        click.echo(f"  {'first action':<14} {demo.confirm_speed(model)}")
    click.echo(_where_to_look(model, Path(plant), run))


def _history_plan(model: Plant, run: runner.RunDir, hours: float) -> backfill.Plan:
    decided = backfill.decide(model, hours, lambda name: runner.running(run, name) is not None)
    if not decided.wanted:
        click.echo(f"  {'history':<14} skipped: {decided.reason}")
    return decided


def _bring_history(model: Plant, seed: int, history: backfill.Plan) -> None:
    end_s = time.time()
    started = time.monotonic()
    since = dt.datetime.fromtimestamp(history.origin_s, dt.UTC).isoformat(timespec="seconds")
    click.echo(f"  {'history':<14} from {since}, lines anchored (stocktake) there:")
    polls = backfill.run(model, seed, history.origin_s, end_s,
                         lambda text: click.echo(text, nl=False))
    click.echo(f"  {'history':<14} {polls} polls queued in {time.monotonic() - started:.0f} s; "
               "the edge agent publishes them before its live polls")


@local.command()
@RUN_DIR
def down(run_dir: str) -> None:
    """Stop exactly the processes `up` started: ours together, then broker and database
    together; leave everything else."""
    run = runner.RunDir(Path(run_dir).resolve())
    if not run.pids.is_dir():
        click.echo(f"nothing to stop in {run.root}")
        return
    names = runner.recorded(run)
    ours = [n for n in names if n not in FOREIGN]
    for wave in (ours, [n for n in names if n in FOREIGN]):
        for name, was in runner.stop_all(run, wave).items():
            click.echo(f"  {name:<14} {'stopped' if was else 'was not running'}")


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
