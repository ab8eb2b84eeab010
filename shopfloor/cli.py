"""The `shopfloor` command: one subcommand per component, loaded lazily so that
`shopfloor check` does not import FastAPI or pymodbus."""

from __future__ import annotations

import importlib
import sys

import click

from shopfloor.shared.errors import ShopfloorError

# name -> "module:attribute" of a click command. Components register here.
COMMANDS: dict[str, str] = {
    "check": "shopfloor.shared.cli:check",
    "schema": "shopfloor.shared.cli:schema",
    "sim": "shopfloor.sim.cli:sim",
    "generate-plant": "shopfloor.sim.cli:generate_plant",
    "edge": "shopfloor.edge.cli:edge",
    "collector": "shopfloor.collector.cli:collector",
    "oee": "shopfloor.kpi.cli:oee",
    "api": "shopfloor.api.cli:api",
    "api-key": "shopfloor.api.cli:api_key",
    "alarms": "shopfloor.alarms.cli:alarms",
    "alarm-webhooks": "shopfloor.alarms.notify.cli:alarm_webhooks",
    "local": "shopfloor.local.cli:local",
    "dashboards": "shopfloor.dashboards.cli:dashboards",
    "mosquitto-acl": "shopfloor.deploy.cli:mosquitto_acl",
    "mosquitto-bridge": "shopfloor.deploy.cli:mosquitto_bridge",
}


class LazyGroup(click.Group):
    """Subcommands imported on first use; the one place where a domain error raised by
    any subcommand becomes a one-line message and exit code 1 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (ShopfloorError, OSError) as exc:  # OSError: a file or port given by the user
            click.echo(f"shopfloor {ctx.invoked_subcommand}: {exc}", err=True)
            sys.exit(1)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            imported = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                return None  # a component not installed in this build
            raise
        command: click.Command = getattr(imported, attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shopfloor")
def main() -> None:
    """shopfloor: shop-floor monitoring and control.

    Every subcommand takes the plant file (YAML) as its first argument; see
    docs/plant-file.md and deploy/plant.example.yaml.
    """

if __name__ == "__main__":
    main()
