"""API keys and roles. Keys are stored only as `sha256:<hex>` in the plant file; a
presented key is hashed and compared in constant time against every stored hash. Keys
are never logged (only the key's *name* appears in logs and the audit)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from shopfloor.shared.control_rules import ROLE_PERMISSIONS, Permission
from shopfloor.shared.plant import ApiKey, Role

__all__ = ["ROLE_PERMISSIONS", "KEY_BYTES", "Permission", "Principal", "authenticate",
           "hash_key", "new_key"]

KEY_BYTES = 32  # random bytes in a generated key (43 url-safe characters)


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
