"""`shopfloor check` and `shopfloor schema`."""

from __future__ import annotations

import sys

import click

from shopfloor.shared.errors import PlantFileError
from shopfloor.shared.loader import load_plant, plant_json_schema
from shopfloor.shared.plant import Plant


def load_or_exit(path: str, *, isolated: bool = False) -> Plant:
    """Load the plant file for a command; on error print every problem and exit 2.
    `isolated`: parse the YAML in a child process (for long-running processes)."""
    try:
        return load_plant(path, isolated=isolated)
    except PlantFileError as exc:
        click.echo(exc.render(), err=True)
        sys.exit(2)


@click.command()
@click.argument("plant", type=click.Path(dir_okay=False))
def check(plant: str) -> None:
    """Validate PLANT; list every error with its path. Exit 0 when valid, 2 when not."""
    model = load_or_exit(plant)
    click.echo(
        f"{plant}: ok — site {model.site.id}, {len(model.lines)} line(s), "
        f"{len(model.machines)} machine(s), {len(model.agents)} agent(s)"
    )


@click.command()
def schema() -> None:
    """Print the JSON Schema of the plant file (for editor completion)."""
    click.echo(plant_json_schema())
