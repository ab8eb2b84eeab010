"""One OPC UA session to one machine's server (asyncua client): connect with the
connection's security (policy, mode, client certificate, trusted server certificates,
user name), resolve every point's node (NodeId or browse path, one batched request each),
check its type, then read (batched Read), write (Write + read back) or subscribe
(monitored items). Failures raise DeviceError; a point whose node is missing or of the
wrong type is left out (`problems`) while the others work."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import (
    CertificateValidator,
    CertificateValidatorMethod,
    CertificateValidatorOptions,
)
from cryptography import x509

from shopfloor.edge.drivers.opcua.convert import node_type_problem, status_name, to_variant
from shopfloor.edge.errors import DeviceError
from shopfloor.shared.contract import PointValue as Value
from shopfloor.shared.enums import DeviceFailure
from shopfloor.shared.protocols.opcua import (
    DeadbandKind,
    OpcUaConnection,
    OpcUaPoint,
    SecurityPolicy,
    browse_steps,
)

log = logging.getLogger(__name__)

HIERARCHICAL = ua.NodeId(ua.ObjectIds.HierarchicalReferences)  # type: ignore[arg-type]
OBJECTS = ua.NodeId(ua.ObjectIds.ObjectsFolder)  # type: ignore[arg-type]
SESSION_TIMEOUT_MS = 60_000
"""A session the edge lost stays on the server this long (then the server drops it)."""
WATCHDOG_S = SESSION_TIMEOUT_MS / 1000 / 4
"""asyncua's watchdog reads the server's state this often: it keeps an idle session (a
polled machine with a long interval) alive. Its default, every second, was a Read per
machine per second (100 a second at 100 machines, the agent's third-largest cost); a
dead server is found sooner by the driver's own checks (request timeouts, a silent
subscription) and a closed socket at once."""
PublishCallback = Callable[[ua.PublishResult], Awaitable[None]]


class OpcUaSession:
    """The client side of one machine's session; `connect` again after a loss."""

    def __init__(self, machine_id: str, connection: OpcUaConnection,
                 points: Sequence[OpcUaPoint]) -> None:
        self.machine_id = machine_id
        self.connection = connection
        self.points = list(points)
        self.nodes: dict[str, ua.NodeId] = {}
        """point name -> its resolved node (points with a problem are not here)."""
        self.problems: dict[str, str] = {}
        """point name -> why it cannot be read (missing node, wrong type, array)."""
        self.client: Client | None = None
        self.lost = asyncio.Event()
        self.handles: dict[int, str] = {}
        """Subscription mode: monitored item client handle -> point name."""

    # ----- connect -------------------------------------------------------------
    async def connect(self) -> None:
        """Open the session and resolve the nodes. DeviceError (kind connect)."""
        self.lost.clear()
        conn = self.connection
        client = Client(conn.endpoint, timeout=conn.timeout_s, watchdog_intervall=WATCHDOG_S)
        client.application_uri = conn.application_uri
        client.session_timeout = SESSION_TIMEOUT_MS
        client.connection_lost_callback = self._on_lost
        if conn.username is not None and conn.password is not None:
            client.set_user(conn.username)
            client.set_password(conn.password.get_secret_value())
        try:
            async with asyncio.timeout(conn.timeout_s * 3):
                if conn.security_policy is not SecurityPolicy.NONE:
                    await self._secure(client)
                await client.connect()
        except (ua.UaStatusCodeError, ServiceError) as exc:
            await _close(client)
            raise DeviceError(self.machine_id, DeviceFailure.CONNECT, self._refused(exc)) from exc
        except (OSError, TimeoutError, ua.UaError, ValueError) as exc:
            await _close(client)
            raise DeviceError(self.machine_id, DeviceFailure.CONNECT,
                              f"{conn.endpoint}: {_describe(exc)}") from exc
        self.client = client
        try:
            await self._resolve()
        except (OSError, TimeoutError, ua.UaError) as exc:
            await self.close()
            raise DeviceError(self.machine_id, DeviceFailure.CONNECT,
                              f"{conn.endpoint}: resolving nodes: {_describe(exc)}") from exc

    async def _secure(self, client: Client) -> None:
        conn = self.connection
        assert conn.certificate is not None and conn.private_key is not None
        await client.set_security(
            SecurityPolicyBasic256Sha256, certificate=conn.certificate,
            private_key=conn.private_key, mode=ua.MessageSecurityMode[conn.security_mode.value],
        )
        if conn.trust_any_server:
            return
        assert conn.trust_dir is not None
        client.certificate_validator = await trust_list(Path(conn.trust_dir))

    def _refused(self, exc: ua.UaStatusCodeError | ServiceError) -> str:
        code = exc.code
        name = status_name(code)
        where = self.connection.endpoint
        if code == ua.StatusCodes.BadCertificateUntrusted:
            return (f"{where}: the server's certificate is not trusted ({name}): put it (or "
                    f"its CA) in trust_dir {self.connection.trust_dir}, or set "
                    "trust_any_server: true")
        if code in (ua.StatusCodes.BadUserAccessDenied, ua.StatusCodes.BadIdentityTokenInvalid,
                    ua.StatusCodes.BadIdentityTokenRejected):
            return f"{where}: user {self.connection.username!r} refused ({name})"
        return f"{where}: {name}"

    async def _on_lost(self, exc: Exception) -> None:
        self.lost.set()

    async def _resolve(self) -> None:
        """Every point's node, and its type check (two batched requests at most)."""
        assert self.client is not None
        self.nodes.clear()
        self.problems.clear()
        by_path = [p for p in self.points if p.browse_path is not None]
        found: dict[str, ua.NodeId] = {
            p.name: ua.NodeId.from_string(p.node_id) for p in self.points if p.node_id
        }
        if by_path:
            results = await self.client.uaclient.translate_browsepaths_to_nodeids(
                [_browse_path(p) for p in by_path]
            )
            for point, result in zip(by_path, results, strict=True):
                if result.StatusCode.is_good() and result.Targets:
                    target = result.Targets[0].TargetId
                    found[point.name] = ua.NodeId(target.Identifier, target.NamespaceIndex)
                else:
                    self.problems[point.name] = (f"browse path {point.browse_path} not found "
                                                 f"({status_name(result.StatusCode)})")
        await self._check_types(found)

    async def _check_types(self, found: dict[str, ua.NodeId]) -> None:
        assert self.client is not None
        points = [p for p in self.points if p.name in found]
        reads = [ua.ReadValueId(NodeId=found[p.name], AttributeId=attr) for p in points
                 for attr in (ua.AttributeIds.DataType, ua.AttributeIds.ValueRank)]
        params = ua.ReadParameters(NodesToRead=reads)
        values = await self.client.uaclient.read(params) if reads else []
        for i, point in enumerate(points):
            data_type, rank = values[2 * i], values[2 * i + 1]
            status = data_type.StatusCode
            if status is not None and not status.is_good():
                self.problems[point.name] = f"node {point.node} not found ({status_name(status)})"
                continue
            problem = node_type_problem(point, _value_of(data_type), _value_of(rank))
            if problem is not None:
                self.problems[point.name] = f"node {point.node}: {problem}"
            else:
                self.nodes[point.name] = found[point.name]

    # ----- read, write, subscribe ------------------------------------------------
    async def read(self, points: Sequence[OpcUaPoint]) -> list[ua.DataValue]:
        """The current DataValues of resolved points (one Read). DeviceError."""
        reads = [ua.ReadValueId(NodeId=self.nodes[p.name], AttributeId=ua.AttributeIds.Value)
                 for p in points]
        params = ua.ReadParameters(NodesToRead=reads, TimestampsToReturn=ua.TimestampsToReturn.Both)
        return await self._call(lambda c: c.uaclient.read(params))  # type: ignore[no-any-return]

    async def write(self, point: OpcUaPoint, value: Value) -> None:
        """Write `value` (engineering units) to the point's node. DeviceError with kind
        exception and the status code's name when the server refuses it."""
        node = self.nodes.get(point.name)
        if node is None:
            raise DeviceError(self.machine_id, DeviceFailure.EXCEPTION,
                              self.problems.get(point.name, f"{point.name}: node unknown"))
        written = ua.WriteValue(NodeId=node, AttributeId=ua.AttributeIds.Value,
                                Value=ua.DataValue(to_variant(point, value)))
        params = ua.WriteParameters(NodesToWrite=[written])
        try:
            (status,) = await self._call(lambda c: c.uaclient.write(params))
        except DeviceError as exc:
            raise exc
        if not status.is_good():
            raise DeviceError(self.machine_id, DeviceFailure.EXCEPTION,
                              f"write {point.name}: {status_name(status)}")

    async def subscribe(self, points: Sequence[OpcUaPoint], interval_s: float,
                        callback: PublishCallback) -> None:
        """A subscription with a monitored item per resolved point (`handles`: client
        handle -> point name). DeviceError."""
        assert self.client is not None
        conn = self.connection
        publishing_s = conn.publishing_interval_s or interval_s
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=publishing_s * 1000,
            RequestedLifetimeCount=10_000,
            # a keep-alive after `interval_s` without changes: a sample, even idle
            RequestedMaxKeepAliveCount=max(1, round(interval_s / publishing_s)),
            MaxNotificationsPerPublish=0,
            PublishingEnabled=True,
        )
        result = await self._call(lambda c: c.uaclient.create_subscription(params, callback))
        handles = self.handles
        handles.clear()  # filled before the request: the first publish may come before
        items = []       # its answer is read
        for handle, point in enumerate(p for p in points if p.name in self.nodes):
            handles[handle + 1] = point.name
            items.append(_monitored_item(handle + 1, self.nodes[point.name], point, conn,
                                         interval_s))
        request = ua.CreateMonitoredItemsParameters(
            SubscriptionId=result.SubscriptionId, ItemsToCreate=items,
            TimestampsToReturn=ua.TimestampsToReturn.Both,
        )
        created = await self._call(lambda c: c.uaclient.create_monitored_items(request))
        for (handle, name), outcome in zip(list(handles.items()), created, strict=True):
            if not outcome.StatusCode.is_good():
                self.problems[name] = f"monitored item refused ({status_name(outcome.StatusCode)})"
                del handles[handle]

    async def _call(self, request: Callable[[Client], Awaitable[Any]]) -> Any:
        if self.client is None:
            raise DeviceError(self.machine_id, DeviceFailure.CONNECT, "not connected")
        try:
            async with asyncio.timeout(self.connection.timeout_s):
                return await request(self.client)
        except (ua.UaStatusCodeError, ServiceError) as exc:
            raise DeviceError(self.machine_id, DeviceFailure.EXCEPTION,
                              status_name(exc.code)) from exc
        except (OSError, TimeoutError, ua.UaError, ConnectionError) as exc:
            self.lost.set()
            raise DeviceError(self.machine_id, DeviceFailure.TIMEOUT, _describe(exc)) from exc

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await _close(client)


async def trust_list(folder: Path) -> CertificateValidatorMethod:
    """A validator that accepts a server certificate in `folder` (DER or PEM files), or
    signed by a CA there, inside its validity; any other is BadCertificateUntrusted."""
    if not folder.is_dir() or not any(p.is_file() for p in folder.iterdir()):
        async def nothing_trusted(cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

        return nothing_trusted
    store = TrustStore([folder], [])
    await store.load()
    return CertificateValidator(
        CertificateValidatorOptions.TIME_RANGE | CertificateValidatorOptions.TRUSTED, store
    )


def _monitored_item(handle: int, node: ua.NodeId, point: OpcUaPoint, conn: OpcUaConnection,
                    interval_s: float) -> ua.MonitoredItemCreateRequest:
    sampling_s = conn.sampling_interval_s
    if sampling_s is None:
        sampling_s = point.poll_interval_s or interval_s
    parameters = ua.MonitoringParameters(
        ClientHandle=handle, SamplingInterval=sampling_s * 1000, QueueSize=conn.queue_size,
        DiscardOldest=True,
    )
    if point.deadband > 0:
        kind = (ua.DeadbandType.Percent if conn.deadband is DeadbandKind.PERCENT
                else ua.DeadbandType.Absolute)
        parameters.Filter = ua.DataChangeFilter(
            Trigger=ua.DataChangeTrigger.StatusValue, DeadbandType=kind.value,
            DeadbandValue=point.deadband / point.scale if kind is ua.DeadbandType.Absolute
            else point.deadband,
        )
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=node, AttributeId=ua.AttributeIds.Value),
        MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=parameters,
    )


def _browse_path(point: OpcUaPoint) -> ua.BrowsePath:
    assert point.browse_path is not None
    elements = []
    for step in browse_steps(point.browse_path):
        ns, _, name = step.partition(":")
        elements.append(ua.RelativePathElement(
            ReferenceTypeId=HIERARCHICAL, IsInverse=False,  # type: ignore[arg-type]
            IncludeSubtypes=True,  # type: ignore[arg-type]
            TargetName=ua.QualifiedName(name, int(ns)),
        ))
    return ua.BrowsePath(StartingNode=OBJECTS, RelativePath=ua.RelativePath(Elements=elements))


def _value_of(data: ua.DataValue) -> Any:
    return data.Value.Value if data.Value is not None else None


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def _close(client: Client) -> None:
    try:
        async with asyncio.timeout(2.0):
            await client.disconnect()
    except Exception:  # noqa: BLE001 - a dead connection may fail to close; drop it
        log.debug("disconnect failed", exc_info=True)


def utc(ts: dt.datetime) -> dt.datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)
