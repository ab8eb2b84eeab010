"""The API's settings: taken from the plant file's `api` section, overridable by
environment variables `SHOPFLOOR_API_HOST`, `SHOPFLOOR_API_PORT`, ... (pydantic-settings).

Outside `dev_mode` the settings refuse unsafe secrets: no API keys at all, a key whose
secret is a well-known placeholder (`changeme`, `secret`, ...), or an empty or placeholder
broker/database password or token."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shopfloor.api.errors import ConfigError
from shopfloor.api.security import hash_key
from shopfloor.shared.plant import ApiKey, Plant

PLACEHOLDER_SECRETS = (
    "", "changeme", "change-me", "change_me", "changeit", "secret", "password", "admin",
    "example", "test", "placeholder", "xxx", "todo", "dev", "default", "shopfloor", "12345678",
)
_PLACEHOLDER_HASHES = frozenset(hash_key(s) for s in PLACEHOLDER_SECRETS)
DEFAULT_STATE_DIR = Path("shopfloor-state/api")
"""Relative to the working directory, like the edge's `shopfloor-state/<agent id>`."""


class ApiSettings(BaseSettings):
    """Everything the API needs besides the plant model itself."""

    model_config = SettingsConfigDict(env_prefix="SHOPFLOOR_API_", extra="ignore")

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    dev_mode: bool = False
    command_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    idempotency_ttl_s: Annotated[float, Field(gt=0)] = 24 * 3600.0
    idempotency_keys_per_api_key: Annotated[int, Field(ge=1)] = 10_000
    """Idempotency-Keys one API key may hold within the TTL; more: 429 with Retry-After."""
    max_command_records: Annotated[int, Field(ge=10)] = 10_000
    state_dir: Path | None = None
    """Folder of the API's durable state (Idempotency-Key answers); see `state_dir_of`."""
    mqtt_client_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")] | None = None
    """Key of the API's persistent MQTT session; see `mqtt_client_id_of`."""
    mqtt_session_expiry_s: Annotated[int, Field(ge=0, le=2**32 - 1)] = 3600
    """How long the broker keeps the session, queueing QoS 1 results, while the API is away."""
    max_connections: Annotated[int, Field(ge=1)] = 1000
    """Open HTTP connections at most (lowered to what the fd limit allows; api/server.py)."""
    request_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    """A connection must deliver a whole request within this time of opening (or of its
    previous answer), else it is closed."""
    keep_alive_s: Annotated[int, Field(ge=1, le=3600)] = 5
    """An idle keep-alive connection is closed after this many seconds."""
    keys: list[ApiKey] = Field(default_factory=list)
    max_body_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    max_raw_window_s: Annotated[float, Field(gt=0)] = 86400.0
    query_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    max_concurrent_reads: Annotated[int, Field(ge=1, le=64)] = 4
    broker_password: SecretStr | None = None
    database_password: SecretStr | None = None
    database_token: SecretStr | None = None

    @model_validator(mode="after")
    def _safe_secrets(self) -> ApiSettings:
        if self.dev_mode:
            return self
        problems = unsafe_secrets(self)
        if problems:
            raise ValueError("; ".join(problems) + " (set api.dev_mode: true only for development)")
        return self


def state_dir_of(settings: ApiSettings) -> Path:
    """Where the API keeps what must survive a restart: `state_dir`, or the default."""
    return settings.state_dir or DEFAULT_STATE_DIR


def mqtt_client_id_of(settings: ApiSettings, site: str) -> str:
    """The API's MQTT client id: `mqtt_client_id`, else one derived from the site, the
    host name and the listen port. Stable across restarts of the same instance (so that
    it resumes its session) and distinct between instances on other hosts or ports."""
    if settings.mqtt_client_id:
        return settings.mqtt_client_id
    return f"shopfloor-api-{site}-{socket.gethostname()}-{settings.port}"


def unsafe_secrets(settings: ApiSettings) -> list[str]:
    """Every reason these settings are unsafe for production (empty list when safe)."""
    problems = []
    if not settings.keys:
        problems.append("api.keys is empty: add keys made with `shopfloor api-key ROLE`")
    for i, key in enumerate(settings.keys):
        if key.hash in _PLACEHOLDER_HASHES:
            problems.append(f"api.keys[{i}] ({key.name}) is a placeholder secret")
    named = {
        "broker.password": settings.broker_password,
        "database.password": settings.database_password,
        "database.token": settings.database_token,
    }
    for where, secret in named.items():
        if secret is not None and secret.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            problems.append(f"{where} is empty or a placeholder")
    return problems


def settings_from_plant(plant: Plant, **overrides: Any) -> ApiSettings:
    """ApiSettings from the plant file, then environment variables, then `overrides`.
    Raises ConfigError listing every unsafe secret."""
    values: dict[str, Any] = {
        "host": plant.api.host,
        "port": plant.api.port,
        "dev_mode": plant.api.dev_mode,
        "command_timeout_s": plant.api.command_timeout_s,
        "state_dir": plant.api.state_dir,
        "mqtt_client_id": plant.api.mqtt_client_id,
        "mqtt_session_expiry_s": plant.api.mqtt_session_expiry_s,
        "max_connections": plant.api.max_connections,
        "request_timeout_s": plant.api.request_timeout_s,
        "keep_alive_s": plant.api.keep_alive_s,
        "keys": plant.api.keys,
        "max_body_bytes": plant.api.max_body_bytes,
        "max_raw_window_s": plant.api.max_raw_window_s,
        "query_timeout_s": plant.api.query_timeout_s,
        "max_concurrent_reads": plant.api.max_concurrent_reads,
        "broker_password": plant.broker.password,
        "database_password": plant.database.password,
        "database_token": plant.database.token,
    }
    values = _env_wins(values)
    values.update(overrides)
    try:
        return ApiSettings(**values)
    except ValidationError as exc:
        messages = [e["msg"].removeprefix("Value error, ") for e in exc.errors(include_url=False)]
        raise ConfigError("; ".join(messages)) from None


def _env_wins(values: dict[str, Any]) -> dict[str, Any]:
    """pydantic-settings gives init arguments priority over the environment; the plant
    file's values are defaults here, so drop those the environment sets."""
    prefix = ApiSettings.model_config.get("env_prefix", "")
    return {k: v for k, v in values.items() if f"{prefix}{k}".upper() not in os.environ}
