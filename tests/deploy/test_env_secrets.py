"""One plant file for every box: the MQTT user and the database token come from the
environment (SHOPFLOOR_BROKER_USERNAME, ...), as the compose file and systemd units set."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopfloor.shared.loader import load_plant

EXAMPLE = Path(__file__).parents[2] / "deploy" / "plant.example.yaml"


def test_environment_sets_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPFLOOR_BROKER_USERNAME", "edge1")
    monkeypatch.setenv("SHOPFLOOR_BROKER_PASSWORD", "s3cret")
    monkeypatch.setenv("SHOPFLOOR_DATABASE_TOKEN", "tok")
    plant = load_plant(EXAMPLE)
    assert plant.broker.username == "edge1"
    assert plant.broker.password is not None
    assert plant.broker.password.get_secret_value() == "s3cret"
    assert plant.database.token is not None and plant.database.token.get_secret_value() == "tok"


def test_without_environment_the_file_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHOPFLOOR_BROKER_USERNAME", "SHOPFLOOR_BROKER_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    plant = load_plant(EXAMPLE)
    assert plant.broker.username is None and plant.broker.password is None
