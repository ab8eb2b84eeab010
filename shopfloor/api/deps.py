"""Dependencies of the routes, as `Annotated[..., Depends(...)]` aliases: the runtime and
its parts, the calling principal (API key -> role), permission checks, and machines and
lines resolved from the path with the key's line restriction applied."""

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


async def _machine(plant: PlantDep, principal: PrincipalDep,
             machine: Annotated[str, Path(description="machine id", examples=["press1"])],
             ) -> MachineRef:
    spec = plant.machines.get(machine)
    if spec is None:
        raise NotFound(f"unknown machine {machine!r}", "unknown_machine")
    if not principal.may_see_line(spec.line):
        raise Forbidden(f"this key is restricted to other lines than {spec.line}")
    return MachineRef(machine, spec)


async def _line(plant: PlantDep, principal: PrincipalDep,
          line: Annotated[str, Path(description="line id", examples=["line1"])]) -> Line:
    found = plant.line(line)
    if found is None:
        raise NotFound(f"unknown line {line!r}", "unknown_line")
    if not principal.may_see_line(found.id):
        raise Forbidden(f"this key is restricted to other lines than {found.id}")
    return found


MachineDep = Annotated[MachineRef, Depends(_machine)]
LineDep = Annotated[Line, Depends(_line)]
