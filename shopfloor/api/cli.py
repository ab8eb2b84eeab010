"""`shopfloor api PLANT` (serve the API with uvicorn) and `shopfloor api-key ROLE` (make a
new random key and print the line for the plant file)."""

from __future__ import annotations

import sys

import click

from shopfloor.api.errors import ConfigError
from shopfloor.shared.cli import load_or_exit
from shopfloor.shared.logs import setup_logging
from shopfloor.shared.plant import Role


@click.command()
@click.argument("plant", type=click.Path(dir_okay=False))
@click.option("--host", default=None, help="listen address (default: plant api.host)")
@click.option("--port", type=int, default=None, help="listen port (default: plant api.port)")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING ...")
def api(plant: str, host: str | None, port: int | None, log_level: str | None) -> None:
    """Serve the control API for PLANT (docs/api.md)."""
    from shopfloor.api.config import settings_from_plant, state_dir_of
    from shopfloor.api.idempotency import AnswerFile
    from shopfloor.api.main import create_app
    from shopfloor.api.server import serve
    from shopfloor.shared.mqtt import tls_context

    setup_logging(log_level)
    model = load_or_exit(plant)
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    try:
        settings = settings_from_plant(model, **overrides)
        # checked here, not in the lifespan, so that an unusable folder is one line
        AnswerFile.open(state_dir_of(settings), settings.idempotency_ttl_s).close()
        if model.broker.tls:  # unusable TLS files: one line, not a failed lifespan
            tls_context(model.broker)
    except ConfigError as exc:
        click.echo(f"{plant}: {exc}", err=True)
        sys.exit(2)
    app = create_app(model, settings)
    serve(app, settings)


@click.command("api-key")
@click.argument("role", type=click.Choice([r.value for r in Role]))
@click.option("--name", default=None, help="key name (default: the role)")
@click.option("--line", "lines", multiple=True, help="restrict the key to this line (repeat)")
def api_key(role: str, name: str | None, lines: tuple[str, ...]) -> None:
    """Print a new random API key for ROLE and its entry for the plant file's api.keys.
    Give the key to its user; store only the hash line."""
    from shopfloor.api.security import hash_key, new_key

    secret = new_key()
    entry = f"- {{name: {name or role}, role: {role}, hash: \"{hash_key(secret)}\""
    entry += f", lines: [{', '.join(lines)}]}}" if lines else "}"
    click.echo(f"key (give to the user, not stored anywhere): {secret}")
    click.echo("plant file, under api.keys:")
    click.echo(f"  {entry}")
