"""Who asks, and may they: the API's authentication and the requirement every route declares.

Every route of the composed API declares exactly one requirement through `requires(...)`, `signed_in()` or
`public()` in its router's or its own `dependencies`; `create_app` refuses to build an app with a route that
declares none (`undeclared`), so a route added later cannot be reachable unchecked. See docs/architecture.md.

Who asks is told by a bearer token (`Authorization: Bearer ...` or `x-api-key`), never by a cookie or a query
parameter, so a page on another site cannot make a browser change anything here (no CSRF): a read or write key
of the settings, a key an admin made, a session token from `POST /auth/login`, or an OIDC ID token that this
server verifies itself against the issuer's keys. With no keys, users or OIDC configured (local mode, which the
server allows on loopback only) every request acts as the local admin, as before access control existed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import duckdb
from fastapi import Depends, HTTPException, Request
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute

from core import users
from core.access import ALL, LOCAL, Principal, Role
from core.keys import HOW_TO_SEND, presented_key

log = logging.getLogger("callscope.access")


class OidcVerifier:
    """What verifies an ID token (analytics/oidc.py); here only the shape, so tests may give another issuer."""

    def verify(self, token: str) -> Mapping[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class Access:
    """The server's credentials: configured keys, the user store (through `db`), session length, OIDC."""

    db: duckdb.DuckDBPyConnection
    read_keys: Mapping[str, str]
    write_keys: Mapping[str, str]
    session_ttl: timedelta = timedelta(hours=12)
    oidc: OidcVerifier | None = None

    def __post_init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Re-read whether anyone is configured (after users or keys change through the API)."""
        cur = self.db.cursor()
        try:
            stored = cur.execute("SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM access_keys)").fetchall()
        finally:
            cur.close()
        self.local = not (self.read_keys or self.write_keys or self.oidc or stored[0][0])

    def principal(self, token: str | None) -> Principal | None:
        """Who a request is; None when it is anonymous or its token is unknown, expired or invalid."""
        if self.local:
            return LOCAL
        if not token:
            return None
        configured = self._configured_key(token)
        if configured is not None:
            return configured
        cur = self.db.cursor()
        try:
            stored = users.stored_key(cur, token)
            if stored is not None:
                return Principal(f"key:{stored.id}", "key", {stored.project: stored.role})
            name = users.session_user(cur, token)
            if name is None and self.oidc is not None and token.count(".") == 2:
                name = self._oidc_user(token)
            return users.principal(cur, name) if name is not None else None
        finally:
            cur.close()

    def _configured_key(self, token: str) -> Principal | None:
        grants: dict[str, Role] = {}
        for keys, role in ((self.read_keys, Role.viewer), (self.write_keys, Role.editor)):
            for key, project in keys.items():
                if hmac.compare_digest(key.encode(), token.encode()):
                    grants[project] = max(role, grants.get(project, role))
        if not grants:
            return None
        # The audit log names a key by a fingerprint, never by the key.
        return Principal("key:" + hashlib.sha256(token.encode()).hexdigest()[:12], "key", grants)

    def _oidc_user(self, token: str) -> str | None:
        assert self.oidc is not None
        try:
            claims = self.oidc.verify(token)
        except Exception as exc:  # an invalid token is an anonymous request; say why without the token
            log.info("OIDC ID token refused: %s", type(exc).__name__)
            return None
        email = claims.get("email")
        if claims.get("email_verified") is False:  # an address the provider did not check names nobody
            log.info("OIDC ID token refused: its e-mail is not verified")
            return None
        return str(email) if email else None


@dataclass(frozen=True)
class Requirement:
    """What a route needs. role None: any signed-in principal (or nobody at all, when `anonymous`).
    `everywhere`: the role on every project, for server-wide objects (receivers, digests, silences)."""

    role: Role | None
    everywhere: bool = False
    anonymous: bool = False

    def __call__(self, request: Request) -> Principal | None:
        access: Access = request.app.state.access
        principal = access.principal(
            presented_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
        )
        request.state.principal = principal
        if principal is None:
            if self.anonymous:
                return None
            raise HTTPException(
                401, f"signed out: sign in, or send a read key ({HOW_TO_SEND})", {"WWW-Authenticate": "Bearer"}
            )
        if self.role is None:
            return principal
        allowed = (
            principal.everywhere(self.role) if self.everywhere else bool(principal.projects(self.role) != frozenset())
        )
        if not allowed:
            where = "on every project" if self.everywhere else "on any project"
            raise HTTPException(403, f"not allowed: this needs the {self.role.name} role {where}")
        return principal

    def describe(self) -> str:
        if self.anonymous:
            return "public"
        if self.role is None:
            return "signed in"
        return f"{self.role.name}{' on every project' if self.everywhere else ''}"


def requires(role: Role, *, everywhere: bool = False) -> DependsParam:
    """The declaration of a route (or router) that needs `role`: data routes then see only the projects where the
    principal holds it (visible_projects); `everywhere` for objects that span projects."""
    return Depends(Requirement(role, everywhere))


def signed_in() -> DependsParam:
    return Depends(Requirement(None))


def public() -> DependsParam:
    return Depends(Requirement(None, anonymous=True))


@dataclass(frozen=True)
class DeclaredRoute:
    """A route of the app as it is served: its methods, full path, and the requirements it declares (its own,
    its router's, and those given where its router was included)."""

    methods: frozenset[str]
    path: str
    requirements: tuple[Requirement, ...]

    def __str__(self) -> str:
        return f"{','.join(sorted(self.methods))} {self.path}"


def api_routes(app: Any) -> list[DeclaredRoute]:
    """Every FastAPI route of `app`, however deeply its router was included."""
    out = []
    for route, deps, path in _walk(app.routes):
        if isinstance(route, APIRoute):
            found = tuple(d.dependency for d in deps if isinstance(d.dependency, Requirement))
            out.append(DeclaredRoute(frozenset(route.methods), path, tuple(dict.fromkeys(found))))
    return out


def _walk(routes: list[Any]) -> Any:
    """(route, the dependencies it runs with, its served path)."""
    try:  # newer FastAPI keeps included routers as branches: the effective route merges include-time dependencies
        from fastapi.routing import _iter_routes_with_context
    except ImportError:  # older FastAPI copies every route into the app, dependencies merged
        for route in routes:
            yield route, list(getattr(route, "dependencies", [])), getattr(route, "path", "")
        return
    for route, context in _iter_routes_with_context(routes):
        if context is None:
            yield route, list(getattr(route, "dependencies", [])), getattr(route, "path", "")
        else:
            yield route, list(context.dependencies), context.path or route.path


def undeclared(app: Any) -> list[str]:
    """Routes that do not declare exactly one requirement ("METHODS path")."""
    return [str(r) for r in api_routes(app) if len(r.requirements) != 1]


def principal_of(request: Request) -> Principal:
    """The principal the route's requirement found. A route without one fails closed (500), never open."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise RuntimeError(f"{request.url.path}: no principal (the route declares no requirement)")
    return principal


def visible_projects(request: Request, role: Role = Role.viewer) -> frozenset[str] | None:
    """The projects whose data this request may touch with `role`; None means every project."""
    return principal_of(request).projects(role)


def check_project(request: Request, project: str, role: Role) -> None:
    """A change to one project: 404 if the asker cannot even see it (its existence is not told), 403 if they
    see it but lack `role`."""
    principal = principal_of(request)
    if principal.role_in(project) is None:
        raise HTTPException(404, f"no project {project!r}")
    if not principal.can(role, project):
        raise HTTPException(403, f"not allowed: this needs the {role.name} role on project {project!r}")


def check_everywhere(request: Request, role: Role) -> None:
    if not principal_of(request).everywhere(role):
        raise HTTPException(403, f"not allowed: this needs the {role.name} role on every project ({ALL})")
