"""`shopfloor mosquitto-acl` and `shopfloor mosquitto-bridge`."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import click

from shopfloor.deploy.mosquitto import Users, acl_file, bridge_conf, parse_central
from shopfloor.shared.cli import load_or_exit


def _emit(text: str, output: str | None) -> None:
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


@click.command("mosquitto-acl")
@click.argument("plant", type=click.Path(dir_okay=False))
@click.option("--collector-user", "collector_users", multiple=True, default=["collector"],
              show_default=True, help="one per collector shard (repeat)")
@click.option("--api-user", "api_users", multiple=True, default=["api"], show_default=True,
              help="one per API replica (repeat)")
@click.option("--observer-user", "observer_users", multiple=True, default=["observer"],
              show_default=True, help="read-only users of the whole site (repeat)")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="file (default stdout)")
def mosquitto_acl(plant: str, collector_users: tuple[str, ...], api_users: tuple[str, ...],
                  observer_users: tuple[str, ...], output: str | None) -> None:
    """Print the mosquitto ACL file for PLANT: each edge agent (user = agent id) may
    publish only its machines' topics and read only their cmd topics (the table is in
    shopfloor/shared/access.py). Every process needs a user of its own: client ids are
    bound to user names."""
    model = load_or_exit(plant)
    users = Users(tuple(collector_users), tuple(api_users), tuple(observer_users))
    try:
        text = acl_file(model, users)
    except ValueError as exc:
        click.echo(f"{plant}: {exc}", err=True)
        sys.exit(2)
    _emit(text, output)


@click.command("mosquitto-bridge")
@click.argument("plant", type=click.Path(dir_okay=False))
@click.option("--central", required=True, help="central broker HOST:PORT")
@click.option("--username", default=None, help="the bridge's user on the central broker")
@click.option(
    "--password-env",
    default="SHOPFLOOR_BRIDGE_PASSWORD",
    show_default=True,
    help="environment variable holding the bridge's password (never a command-line arg)",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="file (default stdout)")
def mosquitto_bridge(
    plant: str, central: str, username: str | None, password_env: str, output: str | None
) -> None:
    """Print a mosquitto bridge section forwarding PLANT's site topics to a central broker."""
    model = load_or_exit(plant)
    try:
        target = parse_central(central)
    except ValueError as exc:
        click.echo(f"--central: {exc}", err=True)
        sys.exit(2)
    password = os.environ.get(password_env)
    if username and not password:
        click.echo(f"--username given but ${password_env} is not set", err=True)
        sys.exit(2)
    target = dataclasses.replace(target, username=username, password=password)
    _emit(bridge_conf(model, target), output)
