"""A real asyncua OPC UA server on a free loopback port, on its own event loop in a
thread: nodes of every type the edge reads, set from the test with a source timestamp
of its choice; optional Basic256Sha256 security with certificates made in the test
(`make_certificate`, cryptography via asyncua's cert_gen) and a user with a password."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.cert_gen import (
    dump_private_key_as_pem,
    generate_private_key,
    generate_self_signed_app_certificate,
)
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.harness.services import LOOPBACK, free_port

NS_URI = "urn:shopfloor:test"

NODES: dict[str, tuple[ua.VariantType, Any]] = {
    "flag": (ua.VariantType.Boolean, True),
    "i16": (ua.VariantType.Int16, -1234),
    "u16": (ua.VariantType.UInt16, 65000),
    "i32": (ua.VariantType.Int32, -70000),
    "u32": (ua.VariantType.UInt32, 4_000_000_000),
    "i64": (ua.VariantType.Int64, -(2**40)),
    "u64": (ua.VariantType.UInt64, 2**63 + 5),
    "f32": (ua.VariantType.Float, 1.5),
    "f64": (ua.VariantType.Double, 2.25),
    "text": (ua.VariantType.String, "WO-17 Ü"),
    "when": (ua.VariantType.DateTime, dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)),
    "count": (ua.VariantType.UInt32, 0),
    "state": (ua.VariantType.UInt16, 1),
    "speed": (ua.VariantType.Float, 50.0),
    "run": (ua.VariantType.Boolean, False),
}
"""name -> (type, initial value); each is `ns=2;s=<name>` and at `2:Machine/2:<name>`."""


def make_certificate(folder: Path, name: str, uri: str, server: bool) -> tuple[Path, Path]:
    """A self-signed application instance certificate and its key (PEM files)."""
    key = generate_private_key()
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
    if server:
        alt_names += [x509.DNSName(socket.gethostname()),
                      x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = generate_self_signed_app_certificate(key, name, {"organizationName": "shopfloor tests"},
                                                alt_names, [usage])
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.der", folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.write_bytes(dump_private_key_as_pem(key))
    return cert_path, key_path


class _Users(UserManager):
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is None and not self.users:
            return User(role=UserRole.User)
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User)
        return None


@dataclass
class Security:
    certificate: Path
    private_key: Path
    policies: list[ua.SecurityPolicyType] = field(default_factory=lambda: [
        ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
        ua.SecurityPolicyType.Basic256Sha256_Sign,
    ])


class OpcuaServer:
    """The server in a thread. `set(name, value, ts)` changes a node; `stop()` and
    `start()` again restart it on the same port (a server restart)."""

    def __init__(self, port: int | None = None, security: Security | None = None,
                 users: dict[str, str] | None = None,
                 refuse: Callable[[str, Any], ua.StatusCodes | None] | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"opc.tcp://{LOOPBACK}:{self.port}/"
        self.security = security
        self.users = users or {}
        self.refuse = refuse
        self.ns = 2
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self.values: dict[str, Any] = {n: v for n, (_, v) in NODES.items()}

    def start(self) -> OpcuaServer:
        ready = threading.Event()
        failed: list[BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                self._server = await self._make()
                await self._server.start()
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                failed.append(exc)
                ready.set()
                return
            ready.set()
            await self._stop.wait()
            await self._server.stop()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        self._thread.start()
        assert ready.wait(30), "OPC UA server did not start"
        if failed:
            raise failed[0]
        return self

    async def _make(self) -> Server:
        server = Server(user_manager=_Users(self.users))
        await server.init()
        server.set_endpoint(self.endpoint)
        if self.security is None:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        else:
            server.set_security_policy(self.security.policies)
            await server.load_certificate(str(self.security.certificate))
            await server.load_private_key(str(self.security.private_key))
        if self.users:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        self.ns = await server.register_namespace(NS_URI)
        folder = await server.nodes.objects.add_object(self.ns, "Machine")
        for name, (vtype, _) in NODES.items():
            node = await folder.add_variable(
                ua.NodeId(name, self.ns), ua.QualifiedName(name, self.ns),
                ua.Variant(self.values[name], vtype), vtype,
            )
            await node.set_writable()
            server.set_attribute_value_setter(node.nodeid, self._setter(name))
        array = await folder.add_variable(
            ua.NodeId("array", self.ns), ua.QualifiedName("array", self.ns),
            ua.Variant([1.0, 2.0], ua.VariantType.Double),
        )
        await array.write_value_rank(1)
        return server

    def _setter(self, name: str) -> Callable[..., None]:
        def setter(node: Any, attr: Any, value: ua.DataValue) -> None:
            new = value.Value.Value if value.Value else None
            if value.SourceTimestamp is None and self.refuse is not None:  # a client's write
                code = self.refuse(name, new)
                if code is not None:
                    raise ua.UaStatusCodeError(code)
            if value.SourceTimestamp is None:
                now = dt.datetime.now(dt.UTC)
                value = ua.DataValue(value.Value, SourceTimestamp=now, ServerTimestamp=now)
            self.values[name] = new
            node.attributes[attr].value = value
        return setter

    def set(self, name: str, value: Any, ts: dt.datetime | None = None) -> dt.datetime:
        """Change a node's value with source timestamp `ts` (default now); returns it."""
        ts = ts or dt.datetime.now(dt.UTC)
        vtype = NODES[name][0]

        async def write() -> None:
            assert self._server is not None
            await self._server.write_attribute_value(
                ua.NodeId(name, self.ns), ua.DataValue(ua.Variant(value, vtype),
                                                       SourceTimestamp=ts, ServerTimestamp=ts))

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(write(), self._loop).result(10)
        return ts

    def stop(self) -> None:
        if self._loop is None or self._stop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        self._loop = None
