"""`shopfloor dashboards build | check | push | verify`."""

from __future__ import annotations

import sys

import click

from shopfloor.dashboards.build import DASHBOARD_DIR, stale, write_all


@click.group()
def dashboards() -> None:
    """Grafana dashboards as code (see docs/dashboards.md)."""


@dashboards.command()
@click.option("--out", type=click.Path(file_okay=False), default=str(DASHBOARD_DIR),
              show_default=True, help="folder for the JSON files")
def build(out: str) -> None:
    """Rebuild the dashboard JSON files from the Python definitions."""
    from pathlib import Path

    for path in write_all(Path(out)):
        click.echo(f"wrote {path}")


@dashboards.command()
def check() -> None:
    """Exit 1 when a committed JSON file differs from a fresh build."""
    names = stale()
    if names:
        click.echo("stale (run `shopfloor dashboards build`): " + ", ".join(names), err=True)
        sys.exit(1)
    click.echo("dashboards up to date")
