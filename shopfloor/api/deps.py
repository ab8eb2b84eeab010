"""Dependencies of the routes, as `Annotated[..., Depends(...)]` aliases: the runtime and
its parts, the calling principal (API key -> role), permission checks, and machines and
lines resolved from the path with the key's line restriction applied (`visible_machine`,
`visible_line`: the one visibility check; what a key may not see does not exist for it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import APIKeyHeader

from shopfloor.api.commands import CommandBus
from shopfloor.api.errors import Forbidden, NotFound, Unauthorized
from shopfloor.api.influx import InfluxClient
from shopfloor.api.live import LiveView
from shopfloor.api.runtime import Runtime
from shopfloor.api.security import Permission, Principal, authenticate
from shopfloor.shared.plant import Line, Machine, Plant

API_KEY_HEADER = "X-API-Key"
_api_key = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                        description="an API key (see docs/api.md, `shopfloor api-key ROLE`)")


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_plant(runtime: RuntimeDep) -> Plant:
    return runtime.plant


async def get_live(runtime: RuntimeDep) -> LiveView:
    return runtime.live


async def get_bus(runtime: RuntimeDep) -> CommandBus:
    return runtime.bus


async def get_influx(runtime: RuntimeDep) -> InfluxClient:
    return runtime.influx


PlantDep = Annotated[Plant, Depends(get_plant)]
LiveDep = Annotated[LiveView, Depends(get_live)]
BusDep = Annotated[CommandBus, Depends(get_bus)]
InfluxDep = Annotated[InfluxClient, Depends(get_influx)]


async def current_principal(runtime: RuntimeDep,
                      key: Annotated[str | None, Security(_api_key)] = None) -> Principal:
    """The caller; 401 when the key is missing or unknown (the key itself is never logged)."""
    if not key:
        raise Unauthorized(f"missing {API_KEY_HEADER} header")
    principal = authenticate(key, runtime.settings.keys)
    if principal is None:
        raise Unauthorized("unknown API key")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller, when its role has `permission` (else 403)."""

    async def check(principal: PrincipalDep) -> Principal:
        if not principal.can(permission):
            raise Forbidden(f"role {principal.role} may not {permission.value}")
        return principal

    return check


ReaderDep = Annotated[Principal, Depends(require(Permission.READ))]
AuditorDep = Annotated[Principal, Depends(require(Permission.AUDIT))]


@dataclass(frozen=True, slots=True)
class MachineRef:
    id: str
    spec: Machine


def require_visible(principal: Principal, line: str, unknown: NotFound) -> None:
    """Raise `unknown` (the 404 the route gives for an id that does not exist) when the
    key may not see `line`: things on other lines do not exist for it."""
    if not principal.may_see_line(line):
        raise unknown


def visible_machine(plant: Plant, principal: Principal, machine_id: str) -> Machine:
    """The machine `machine_id` as the caller may see it. A machine on a line the key is
    restricted away from is answered exactly like an unknown one (404, same message): a
    403 would confirm that it exists. Every route that takes a machine goes through here."""
    unknown = NotFound(f"unknown machine {machine_id!r}", "unknown_machine")
    spec = plant.machines.get(machine_id)
    if spec is None:
        raise unknown
    require_visible(principal, spec.line, unknown)
    return spec


def visible_line(plant: Plant, principal: Principal, line_id: str) -> Line:
    """The line `line_id` as the caller may see it: 404 when unknown or outside the key's
    lines (see `visible_machine`)."""
    unknown = NotFound(f"unknown line {line_id!r}", "unknown_line")
    found = plant.line(line_id)
    if found is None:
        raise unknown
    require_visible(principal, found.id, unknown)
    return found


async def _machine(plant: PlantDep, principal: PrincipalDep,
             machine: Annotated[str, Path(description="machine id", examples=["press1"])],
             ) -> MachineRef:
    return MachineRef(machine, visible_machine(plant, principal, machine))


async def _line(plant: PlantDep, principal: PrincipalDep,
          line: Annotated[str, Path(description="line id", examples=["line1"])]) -> Line:
    return visible_line(plant, principal, line)


MachineDep = Annotated[MachineRef, Depends(_machine)]
LineDep = Annotated[Line, Depends(_line)]
