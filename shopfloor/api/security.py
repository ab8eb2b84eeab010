"""API keys and roles. Keys are stored only as `sha256:<hex>` in the plant file; a
presented key is hashed and compared in constant time against every stored hash. Keys
are never logged (only the key's *name* appears in logs and the audit)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from shopfloor.shared.plant import ApiKey, Role

KEY_BYTES = 32  # random bytes in a generated key (43 url-safe characters)


class Permission(StrEnum):
    """What a request may do. The role table below is the single source; docs/api.md
    renders it and the auth-matrix test checks the two agree."""

    READ = "read"  # plant, live state, history, KPIs, WIP
    OPERATE = "operate"  # start, stop, alarm acknowledge, command lookup
    SETPOINT = "setpoint"  # write any writable point
    CHANGEOVER = "changeover"  # product / work order
    MAINTENANCE = "maintenance"  # maintenance mode on/off
    START_IN_MAINTENANCE = "start_in_maintenance"  # start while maintenance mode is on
    STOCKTAKE = "stocktake"  # set a line's WIP anchor count
    AUDIT = "audit"  # read the command audit
    CLASSIFY = "classify"  # give downtime a reason, split it (own lines; not a person's reason)
    RECLASSIFY = "reclassify"  # change a reason a person gave


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({P.READ}),
    Role.OPERATOR: frozenset({P.READ, P.OPERATE, P.SETPOINT, P.CLASSIFY}),
    Role.SUPERVISOR: frozenset({P.READ, P.OPERATE, P.SETPOINT, P.CHANGEOVER, P.STOCKTAKE,
                                P.AUDIT, P.CLASSIFY, P.RECLASSIFY}),
    Role.MAINTENANCE: frozenset({P.READ, P.OPERATE, P.SETPOINT, P.MAINTENANCE,
                                 P.START_IN_MAINTENANCE, P.AUDIT, P.CLASSIFY}),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's name (never the key), its role and optional lines."""

    name: str
    role: Role
    lines: frozenset[str] | None = None

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def may_see_line(self, line: str) -> bool:
        return self.lines is None or line in self.lines


def hash_key(secret: str) -> str:
    """The stored form of a key: `sha256:<64 hex>`."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (url-safe text)."""
    return secrets.token_urlsafe(KEY_BYTES)


def authenticate(secret: str, keys: list[ApiKey]) -> Principal | None:
    """The principal whose stored hash matches `secret`, else None. Every stored hash is
    compared (constant-time each), so timing does not reveal which one matched."""
    presented = hash_key(secret).encode()
    found: ApiKey | None = None
    for key in keys:
        if hmac.compare_digest(presented, key.hash.encode()) and found is None:
            found = key
    if found is None:
        return None
    lines = frozenset(found.lines) if found.lines is not None else None
    return Principal(found.name, found.role, lines)
