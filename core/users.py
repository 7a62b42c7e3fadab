"""The built-in user store: users with argon2-hashed passwords (or none, for users who sign in through OIDC),
their roles per project, sign-in sessions, and API keys made by admins.

Every change takes the acting principal and writes its audit row (core/audit.py) in the same transaction.
Session tokens and keys are random (secrets.token_urlsafe) and stored only as SHA-256 hashes: a stolen store
file yields no usable token. Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core import audit
from core.access import ALL, Principal, Role
from core.store import transaction

_hasher = PasswordHasher()
# Verified when the user does not exist, so a wrong name costs as long as a wrong password (no user probing).
_DUMMY_HASH = _hasher.hash("callscope-no-such-user")
MIN_PASSWORD = 8


class UserError(ValueError):
    """A change to users or keys that cannot be made; the message says why (the API answers 400/404/409)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_name(name: str) -> str:
    name = str(name or "").strip()
    if not name or len(name) > 200 or any(c.isspace() for c in name):
        raise UserError("name: a user name is 1-200 characters without spaces (an e-mail address for OIDC users)")
    return name


def _check_project(project: str) -> str:
    project = str(project or "").strip()
    if not project or len(project) > 200:
        raise UserError(f"project: expected a project name or {ALL!r} (every project)")
    return project


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password: at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


# -- reading ---------------------------------------------------------------------------------------------------


def has_users(cur: duckdb.DuckDBPyConnection) -> bool:
    return cur.execute("SELECT count(*) FROM users").fetchall()[0][0] > 0


def grants_of(cur: duckdb.DuckDBPyConnection, name: str) -> dict[str, Role]:
    rows = cur.execute("SELECT project, role FROM user_grants WHERE user_name = ?", [name]).fetchall()
    return {project: Role.parse(role) for project, role in rows}


def user(cur: duckdb.DuckDBPyConnection, name: str) -> dict[str, Any] | None:
    """A user as admins see it: name, whether a password is set, grants (never the hash)."""
    row = cur.execute("SELECT name, password_hash IS NOT NULL, created_at FROM users WHERE name = ?", [name]).fetchall()
    if not row:
        return None
    grants = {p: r.name for p, r in sorted(grants_of(cur, name).items())}
    return {"name": row[0][0], "password": row[0][1], "created_at": row[0][2], "grants": grants}


def list_users(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [r[0] for r in cur.execute("SELECT name FROM users ORDER BY name").fetchall()]
    return [u for u in (user(cur, n) for n in names) if u is not None]


def principal(cur: duckdb.DuckDBPyConnection, name: str) -> Principal | None:
    if not cur.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchall():
        return None
    return Principal(name, "user", grants_of(cur, name))


def check_password(cur: duckdb.DuckDBPyConnection, name: str, password: str) -> bool:
    row = cur.execute("SELECT password_hash FROM users WHERE name = ?", [name]).fetchall()
    stored = row[0][0] if row and row[0][0] else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None


# -- users -----------------------------------------------------------------------------------------------------


def add_user(
    db: duckdb.DuckDBPyConnection,
    actor: Principal,
    name: str,
    password: str | None,
    grants: Mapping[str, Role],
) -> dict[str, Any]:
    """A new user; password None: the user signs in only through OIDC (the ID token's e-mail is the name)."""
    name = _check_name(name)
    hashed = hash_password(password) if password is not None else None
    grants = {_check_project(p): r for p, r in grants.items()}
    with transaction(db) as cur:
        if cur.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchall():
            raise UserError(f"name: user {name!r} exists", 409)
        cur.execute("INSERT INTO users VALUES (?, ?, ?)", [name, hashed, datetime.now(UTC)])
        for project, role in grants.items():
            cur.execute("INSERT INTO user_grants VALUES (?, ?, ?)", [name, project, role.name])
        after = user(cur, name)
        audit.record(cur, actor, "create", "user", name, after=_shown(after))
    return after or {}


def remove_user(db: duckdb.DuckDBPyConnection, actor: Principal, name: str) -> None:
    with transaction(db) as cur:
        before = user(cur, name)
        if before is None:
            raise UserError(f"no user {name!r}", 404)
        cur.execute("DELETE FROM user_grants WHERE user_name = ?", [name])
        cur.execute("DELETE FROM user_sessions WHERE user_name = ?", [name])
        cur.execute("DELETE FROM users WHERE name = ?", [name])
        audit.record(cur, actor, "delete", "user", name, before=_shown(before))


def set_role(
    db: duckdb.DuckDBPyConnection, actor: Principal, name: str, project: str, role: Role | None
) -> dict[str, Any]:
    """Grant `role` on `project` (ALL: every project); None takes the grant away."""
    project = _check_project(project)
    with transaction(db) as cur:
        before = user(cur, name)
        if before is None:
            raise UserError(f"no user {name!r}", 404)
        cur.execute("DELETE FROM user_grants WHERE user_name = ? AND project = ?", [name, project])
        if role is not None:
            cur.execute("INSERT INTO user_grants VALUES (?, ?, ?)", [name, project, role.name])
        after = user(cur, name)
        if after != before:
            audit.record(
                cur, actor, "update", "user", name, before=_shown(before), after=_shown(after), project=project
            )
    return after or {}


def set_password(db: duckdb.DuckDBPyConnection, actor: Principal, name: str, password: str) -> None:
    hashed = hash_password(password)
    with transaction(db) as cur:
        before = user(cur, name)
        if before is None:
            raise UserError(f"no user {name!r}", 404)
        cur.execute("UPDATE users SET password_hash = ? WHERE name = ?", [hashed, name])
        cur.execute("DELETE FROM user_sessions WHERE user_name = ?", [name])  # a new password ends old sessions
        audit.record(cur, actor, "update", "user", name, before=_shown(before), after=_shown(user(cur, name)))


def _shown(u: dict[str, Any] | None) -> dict[str, Any] | None:
    """A user as the audit log keeps it: no timestamps that would make before/after differ by themselves."""
    return None if u is None else {"name": u["name"], "password": u["password"], "grants": u["grants"]}


# -- sessions --------------------------------------------------------------------------------------------------


def start_session(db: duckdb.DuckDBPyConnection, name: str, ttl: timedelta) -> tuple[str, datetime]:
    """A new session token for a user whose password (or ID token) was checked; returned once, stored hashed."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with transaction(db) as cur:
        cur.execute("DELETE FROM user_sessions WHERE expires_at <= ?", [now])
        cur.execute("INSERT INTO user_sessions VALUES (?, ?, ?, ?)", [_sha(token), name, now, now + ttl])
    return token, now + ttl


def session_user(cur: duckdb.DuckDBPyConnection, token: str, now: datetime | None = None) -> str | None:
    """The user of a live session token; None when unknown or expired."""
    row = cur.execute(
        "SELECT user_name FROM user_sessions WHERE token_sha256 = ? AND expires_at > ?",
        [_sha(token), now or datetime.now(UTC)],
    ).fetchall()
    return row[0][0] if row else None


def end_session(db: duckdb.DuckDBPyConnection, token: str) -> bool:
    with transaction(db) as cur:
        found = cur.execute("SELECT 1 FROM user_sessions WHERE token_sha256 = ?", [_sha(token)]).fetchall()
        cur.execute("DELETE FROM user_sessions WHERE token_sha256 = ?", [_sha(token)])
    return bool(found)


# -- keys made by admins -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredKey:
    id: str
    project: str
    role: Role


def _key_shown(row: tuple) -> dict[str, Any]:
    return {"id": row[0], "project": row[1], "role": row[2], "note": row[3], "created_by": row[4], "created_at": row[5]}


def list_keys(cur: duckdb.DuckDBPyConnection, projects: frozenset[str] | None = None) -> list[dict[str, Any]]:
    rows = cur.execute(
        "SELECT id, project, role, note, created_by, created_at FROM access_keys ORDER BY created_at, id"
    ).fetchall()
    return [_key_shown(r) for r in rows if projects is None or r[1] in projects]


def add_key(
    db: duckdb.DuckDBPyConnection, actor: Principal, project: str, role: Role, note: str | None = None
) -> tuple[str, dict[str, Any]]:
    """A new key for one project and role; the key itself is returned once and stored only hashed."""
    project = _check_project(project)
    if project == ALL:
        raise UserError("project: a key belongs to one project")
    key = "cs_" + secrets.token_urlsafe(32)
    key_id = secrets.token_hex(6)
    row = (key_id, project, role.name, (note or "")[:200] or None, actor.name, datetime.now(UTC))
    with transaction(db) as cur:
        cur.execute("INSERT INTO access_keys VALUES (?, ?, ?, ?, ?, ?, ?)", [row[0], _sha(key), *row[1:]])
        shown = _key_shown(row)
        audit.record(cur, actor, "create", "key", key_id, after=_audit_key(shown), project=project)
    return key, shown


def remove_key(db: duckdb.DuckDBPyConnection, actor: Principal, key_id: str, projects: frozenset[str] | None) -> None:
    """Revoke a key; one of a project outside `projects` is as unknown as a missing one (no existence leak)."""
    with transaction(db) as cur:
        found = [k for k in list_keys(cur, projects) if k["id"] == key_id]
        if not found:
            raise UserError(f"no key {key_id!r}", 404)
        cur.execute("DELETE FROM access_keys WHERE id = ?", [key_id])
        audit.record(cur, actor, "delete", "key", key_id, before=_audit_key(found[0]), project=found[0]["project"])


def _audit_key(shown: dict[str, Any]) -> dict[str, Any]:
    return {k: shown[k] for k in ("id", "project", "role", "note")}


def stored_key(cur: duckdb.DuckDBPyConnection, presented: str) -> StoredKey | None:
    wanted = _sha(presented)
    rows = cur.execute(
        "SELECT id, project, role, key_sha256 FROM access_keys WHERE key_sha256 = ?", [wanted]
    ).fetchall()
    for key_id, project, role, digest in rows:
        if hmac.compare_digest(digest, wanted):
            return StoredKey(key_id, project, Role.parse(role))
    return None
