"""`shopfloor dashboards build | check | push | verify`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from shopfloor.dashboards.files import DASHBOARD_DIR, load_committed


@click.group()
def dashboards() -> None:
    """Grafana dashboards as code (see docs/dashboards.md)."""


@dashboards.command()
@click.option("--out", type=click.Path(file_okay=False), default=str(DASHBOARD_DIR),
              show_default=True, help="folder for the JSON files")
def build(out: str) -> None:
    """Rebuild the dashboard JSON files from the Python definitions."""
    from shopfloor.dashboards.build import write_all

    for path in write_all(Path(out)):
        click.echo(f"wrote {path}")


@dashboards.command()
def check() -> None:
    """Exit 1 when a committed JSON file differs from a fresh build."""
    from shopfloor.dashboards.build import stale

    names = stale()
    if names:
        click.echo("stale (run `shopfloor dashboards build`): " + ", ".join(names), err=True)
        sys.exit(1)
    click.echo("dashboards up to date")


@dashboards.command()
@click.option("--url", required=True, envvar="GRAFANA_URL", help="Grafana base URL")
@click.option("--token", required=True, envvar="GRAFANA_TOKEN",
              help="service-account token (or $GRAFANA_TOKEN)")
@click.option("--influx-url", required=True, envvar="INFLUXDB_URL",
              help="InfluxDB URL as Grafana reaches it")
@click.option("--database", default="shopfloor", show_default=True, envvar="INFLUXDB_DATABASE")
@click.option("--influx-token", envvar="INFLUXDB_TOKEN", help="InfluxDB 2.x/3.x token")
@click.option("--influx-user", envvar="INFLUXDB_USER", help="InfluxDB 1.x user")
@click.option("--influx-password", envvar="INFLUXDB_PASSWORD", help="InfluxDB 1.x password")
def push(url: str, token: str, influx_url: str, database: str, influx_token: str | None,
         influx_user: str | None, influx_password: str | None) -> None:
    """Create or update the datasource, the folder "shopfloor" and the dashboards on a
    running Grafana (its HTTP API); safe to run again."""
    from shopfloor.dashboards.push import GrafanaPushError, InfluxSource, connect
    from shopfloor.dashboards.push import push as run_push

    source = InfluxSource(influx_url, database, influx_token, influx_user, influx_password)
    try:
        report = run_push(connect(url, token), source, load_committed())
    except GrafanaPushError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(f"datasource {report.datasource}, folder {report.folder}")
    for line in report.dashboards:
        click.echo(f"dashboard {line}")


@dashboards.command()
@click.option("--influx-url", required=True, envvar="INFLUXDB_URL", help="InfluxDB base URL")
@click.option("--database", default="shopfloor", show_default=True, envvar="INFLUXDB_DATABASE")
@click.option("--influx-token", envvar="INFLUXDB_TOKEN", help="InfluxDB 2.x/3.x token")
@click.option("--since", default="1h", show_default=True, help="time range: now minus this")
def verify(influx_url: str, database: str, influx_token: str | None, since: str) -> None:
    """Run every panel's and variable's query of the committed dashboards against
    InfluxDB, macros expanded as Grafana does; list panels without drawable data."""
    import time

    from shopfloor.dashboards.panels_model import interval_ms
    from shopfloor.dashboards.verify import influxql_client, verify_dashboard

    to_ms = int(time.time() * 1000)
    client = influxql_client(influx_url, database, influx_token)
    failed = 0
    try:
        for model in load_committed().values():
            for outcome in verify_dashboard(client, model, to_ms - interval_ms(since), to_ms):
                failed += bool(outcome.problems)
                status = "ok" if not outcome.problems else "; ".join(outcome.problems)
                click.echo(f"{outcome.label}: {status}")
    finally:
        client.close()
    sys.exit(1 if failed else 0)
