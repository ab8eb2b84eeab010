"""The API's MQTT client id setting: a default stable for the same site, host and port,
distinct for another port, overridable by the plant file and the environment; and the
command ids that carry the instance's prefix."""

from __future__ import annotations

import socket

import pytest

from shopfloor.api.commands import id_prefix, new_command_id
from shopfloor.api.config import mqtt_client_id_of, settings_from_plant
from shopfloor.api.errors import ConfigError
from shopfloor.shared.plant import Plant
from tests.harness.plants import example_data

ENV = "SHOPFLOOR_API_MQTT_CLIENT_ID"


def _plant(**api: object) -> Plant:
    data = example_data()
    data["api"] = {**data["api"], "dev_mode": True, **api}
    return Plant.model_validate(data)


def test_default_client_id_is_stable_per_site_host_and_port(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    plant = _plant()
    site = plant.site.id
    first = mqtt_client_id_of(settings_from_plant(plant, port=8100), site)
    assert first == f"shopfloor-api-{site}-{socket.gethostname()}-8100"
    assert mqtt_client_id_of(settings_from_plant(plant, port=8100), site) == first
    assert mqtt_client_id_of(settings_from_plant(plant, port=8101), site) != first


def test_client_id_from_plant_file_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    plant = _plant(mqtt_client_id="api-hall-2", mqtt_session_expiry_s=600)
    settings = settings_from_plant(plant)
    assert mqtt_client_id_of(settings, plant.site.id) == "api-hall-2"
    assert settings.mqtt_session_expiry_s == 600
    monkeypatch.setenv(ENV, "api-from-env")
    assert mqtt_client_id_of(settings_from_plant(plant), plant.site.id) == "api-from-env"
    assert settings_from_plant(_plant()).mqtt_session_expiry_s == 3600


def test_client_id_with_wildcards_or_spaces_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="mqtt_client_id"):
        _plant(mqtt_client_id="api/#")
    monkeypatch.setenv(ENV, "two words")
    with pytest.raises(ConfigError):
        settings_from_plant(_plant())


def test_command_ids_carry_the_instance_prefix() -> None:
    prefix = id_prefix("api-a")
    ids = {new_command_id(prefix) for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and i.startswith(prefix) for i in ids)
    assert id_prefix("api-b") != prefix and id_prefix("api-a") == prefix
