"""`shopfloor mosquitto-acl` and `shopfloor mosquitto-bridge`: output and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from shopfloor.cli import main
from shopfloor.deploy.mosquitto import acl_file, parse_central
from shopfloor.shared.loader import load_plant

EXAMPLE = str(Path(__file__).parents[2] / "deploy" / "plant.example.yaml")


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def test_acl_to_file_equals_the_library_output(tmp_path: Path) -> None:
    out = tmp_path / "acl"
    assert run("mosquitto-acl", EXAMPLE, "-o", str(out))[0] == 0
    assert out.read_text() == acl_file(load_plant(EXAMPLE))


def test_acl_of_a_bad_plant_file_lists_the_error(tmp_path: Path) -> None:
    bad = tmp_path / "plant.yaml"
    bad.write_text(Path(EXAMPLE).read_text().replace("port: 1883", "port: 99999"))
    code, output = run("mosquitto-acl", str(bad))
    assert code == 2 and "broker.port" in output


def test_bridge_needs_a_valid_central_and_a_password_for_a_user() -> None:
    code, output = run("mosquitto-bridge", EXAMPLE, "--central", "central:notaport")
    assert code == 2 and "HOST:PORT" in output
    code, output = run("mosquitto-bridge", EXAMPLE, "--central", "central:8883",
                       "--username", "bridge-demo", env={"SHOPFLOOR_BRIDGE_PASSWORD": ""})
    assert code == 2 and "SHOPFLOOR_BRIDGE_PASSWORD" in output
    code, output = run("mosquitto-bridge", EXAMPLE, "--central", "central:8883",
                       "--username", "bridge-demo", env={"SHOPFLOOR_BRIDGE_PASSWORD": "pw"})
    assert code == 0
    assert "address central:8883\n" in output and "topic shopfloor/v1/demo/# out 1\n" in output
    assert "remote_username bridge-demo\n" in output and "remote_password pw\n" in output


@pytest.mark.parametrize(("text", "host", "port"), [("c", "c", 1883), ("c:8883", "c", 8883),
                                                    ("10.0.0.1:1", "10.0.0.1", 1)])
def test_parse_central(text: str, host: str, port: int) -> None:
    central = parse_central(text)
    assert (central.host, central.port) == (host, port)


@pytest.mark.parametrize("text", [":1883", "c:0", "c:65536", "c:x"])
def test_parse_central_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_central(text)
