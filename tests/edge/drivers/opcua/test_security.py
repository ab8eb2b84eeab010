"""OPC UA security against a real asyncua server: Basic256Sha256 in Sign and in
SignAndEncrypt with certificates made in the test, a server certificate that is not in
the trust list (refused with a clear error, unless the plant file trusts any server),
and user name / password."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shopfloor.edge.drivers.opcua.session import OpcUaSession
from shopfloor.edge.errors import DeviceError
from shopfloor.shared.enums import DeviceFailure
from shopfloor.shared.protocols.opcua import OpcUaConnection, OpcUaPoint
from tests.harness.opcua import OpcuaServer, Security, make_certificate

CLIENT_URI = "urn:shopfloor:edge:test"
POINTS = [OpcUaPoint(name="speed", node_id="ns=2;s=speed", type="float32"),
          OpcUaPoint(name="state", browse_path="2:Machine/2:state", type="uint16")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pki")
    server_cert, server_key = make_certificate(root / "server", "server",
                                               "urn:shopfloor:test:server", server=True)
    client_cert, client_key = make_certificate(root / "client", "client", CLIENT_URI,
                                               server=False)
    trusted = root / "trusted"
    trusted.mkdir()
    shutil.copy(server_cert, trusted / "server.der")
    (root / "empty").mkdir()
    return {"server_cert": server_cert, "server_key": server_key, "client_cert": client_cert,
            "client_key": client_key, "trusted": trusted, "empty": root / "empty"}


@pytest.fixture(scope="module")
def secure_server(pki: dict[str, Path]) -> Iterator[OpcuaServer]:
    server = OpcuaServer(security=Security(pki["server_cert"], pki["server_key"]),
                         users={"operator": "s3cret"}).start()
    yield server
    server.stop()


def _connection(server: OpcuaServer, pki: dict[str, Path], **extra: Any) -> OpcUaConnection:
    fields: dict[str, Any] = {
        "protocol": "opcua", "endpoint": server.endpoint, "security_policy": "Basic256Sha256",
        "security_mode": "SignAndEncrypt", "certificate": str(pki["client_cert"]),
        "private_key": str(pki["client_key"]), "trust_dir": str(pki["trusted"]),
        "application_uri": CLIENT_URI, "username": "operator", "password": "s3cret",
        "timeout_s": 5.0,
    }
    fields.update(extra)
    return OpcUaConnection.model_validate(fields)


async def _read(connection: OpcUaConnection) -> dict[str, Any]:
    session = OpcUaSession("m1", connection, POINTS)
    await session.connect()
    try:
        assert session.problems == {}
        values = await session.read(POINTS)
        return {p.name: v.Value.Value for p, v in zip(POINTS, values, strict=True)}
    finally:
        await session.close()


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
def test_trusted_server_with_user_reads(mode: str, secure_server: OpcuaServer,
                                        pki: dict[str, Path]) -> None:
    values = asyncio.run(_read(_connection(secure_server, pki, security_mode=mode)))
    assert values == {"speed": secure_server.values["speed"], "state": 1}


def test_untrusted_server_is_refused_with_a_clear_error(secure_server: OpcuaServer,
                                                        pki: dict[str, Path]) -> None:
    with pytest.raises(DeviceError) as refused:
        asyncio.run(_read(_connection(secure_server, pki, trust_dir=str(pki["empty"]))))
    assert refused.value.kind is DeviceFailure.CONNECT
    assert "not trusted" in refused.value.detail
    assert "BadCertificateUntrusted" in refused.value.detail
    assert str(pki["empty"]) in refused.value.detail


def test_trust_any_server_accepts_an_unlisted_certificate(secure_server: OpcuaServer,
                                                          pki: dict[str, Path]) -> None:
    connection = _connection(secure_server, pki, trust_dir=None, trust_any_server=True)
    assert asyncio.run(_read(connection))["state"] == 1


def test_wrong_password_is_refused(secure_server: OpcuaServer, pki: dict[str, Path]) -> None:
    with pytest.raises(DeviceError) as refused:
        asyncio.run(_read(_connection(secure_server, pki, password="wrong")))
    assert refused.value.kind is DeviceFailure.CONNECT
    assert "operator" in refused.value.detail and "Bad" in refused.value.detail
