"""Routes of sign-in and of access itself: log in / out, who am I; users, their roles and keys (admins); the
audit log (admins), as JSON or exported as CSV / JSON Lines.

A project admin manages grants and keys of the projects they administer; a grant on every project ('*') and
removing a user need the admin role on every project the change touches. A user or key of a project the admin
cannot see answers 404, exactly as one that does not exist.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from analytics.access import Access, principal_of, public, requires, signed_in
from analytics.sign_in_throttle import SignInThrottle
from core import audit, users
from core.access import ALL, Principal, Role
from core.keys import presented_key

me_router = APIRouter(prefix="/auth", tags=["access"], dependencies=[signed_in()])
login_router = APIRouter(prefix="/auth", tags=["access"], dependencies=[public()])
admin_router = APIRouter(tags=["access"], dependencies=[requires(Role.admin)])

Json = Annotated[Any, Body()]


def routers() -> list[APIRouter]:
    return [login_router, me_router, admin_router]


def _access(request: Request) -> Access:
    return request.app.state.access


def _throttle(request: Request) -> SignInThrottle:
    """The app's failed-sign-in counts (analytics/sign_in_throttle.py; made by analytics.api.create_app)."""
    return request.app.state.sign_in_throttle


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise HTTPException(400, "body: expected a JSON object")
    return body


def _text(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise HTTPException(400, f"{name}: expected a non-empty string")
    return value


def _role(value: Any, name: str = "role") -> Role:
    try:
        return Role.parse(value)
    except ValueError as exc:
        raise HTTPException(400, f"{name}: {exc}") from None


def _admin_projects(request: Request) -> frozenset[str] | None:
    return principal_of(request).projects(Role.admin)


def _must_admin(request: Request, project: str) -> None:
    """The admin role on `project` (ALL: on every project); 404 when the asker cannot see the project at all."""
    principal = principal_of(request)
    if project == ALL:
        if not principal.everywhere(Role.admin):
            raise HTTPException(403, "not allowed: a grant on every project ('*') needs the admin role everywhere")
        return
    if principal.role_in(project) is None:
        raise HTTPException(404, f"no project {project!r}")
    if not principal.can(Role.admin, project):
        raise HTTPException(403, f"not allowed: this needs the admin role on project {project!r}")


def _user_error(exc: users.UserError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


def _db_call(request: Request, fn: Any, *args: Any) -> Any:
    try:
        return fn(_access(request).db, principal_of(request), *args)
    except users.UserError as exc:
        raise _user_error(exc) from None
    finally:
        _access(request).refresh()


# -- sign-in --------------------------------------------------------------------------------------------------


@login_router.post("/login", summary="Sign in with a name and password: a session token that expires")
async def login(request: Request, body: Json) -> Any:
    body = _object(body)
    name, password = _text(body, "name"), _text(body, "password")
    access = _access(request)
    throttle = _throttle(request)
    address = request.client.host if request.client else None
    wait = throttle.retry_after(name or "", address)
    if wait is not None:  # refused before the password is checked: guessing gains nothing by trying
        raise HTTPException(429, f"too many failed sign-ins: try again in {wait} s", {"Retry-After": str(wait)})

    def check() -> tuple[str, datetime] | None:
        cur = access.db.cursor()
        try:
            ok = users.check_password(cur, name or "", password or "")
        finally:
            cur.close()
        return users.start_session(access.db, name or "", access.session_ttl) if ok else None

    started = await run_in_threadpool(check)
    if started is None:
        throttle.failed(name or "", address)
        raise HTTPException(401, "wrong name or password", {"WWW-Authenticate": "Bearer"})
    throttle.succeeded(name or "")
    token, expires = started
    return {"token": token, "expires_at": expires.isoformat(), "name": name}


@me_router.post("/logout", summary="End the session of the token presented")
def logout(request: Request) -> Any:
    token = presented_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
    ended = users.end_session(_access(request).db, token) if token else False
    return {"signed_out": ended}


@me_router.get("/me", summary="Who the request acts as, and its roles per project ('*': every project)")
def me(request: Request) -> Any:
    principal = principal_of(request)
    return _principal_dict(principal, _access(request).local)


def _principal_dict(principal: Principal, local: bool) -> dict[str, Any]:
    return {
        "name": principal.name,
        "kind": principal.kind,
        "local_mode": local,
        "grants": {p: r.name for p, r in sorted(principal.grants.items())},
    }


# -- users ----------------------------------------------------------------------------------------------------


def _visible_user(u: dict[str, Any], projects: frozenset[str] | None) -> dict[str, Any] | None:
    """A user as a project admin sees it: only the grants on their projects (and on every project, which covers
    theirs); None if it has none of them."""
    if projects is None:
        return u
    grants = {p: r for p, r in u["grants"].items() if p in projects or p == ALL}
    return {**u, "grants": grants} if grants else None


@admin_router.get("/access/users", summary="Users and their roles per project (of the projects you administer)")
def list_users(request: Request) -> Any:
    projects = _admin_projects(request)
    cur = _access(request).db.cursor()
    try:
        found = users.list_users(cur)
    finally:
        cur.close()
    shown = [v for v in (_visible_user(u, projects) for u in found) if v is not None]
    return {"users": shown}


@admin_router.post("/access/users", status_code=201, summary="Add a user: name, password (omit for OIDC), grants")
def add_user(request: Request, body: Json) -> Any:
    body = _object(body)
    name = _text(body, "name")
    password = _text(body, "password", required=False)
    raw = body.get("grants") or {}
    if not isinstance(raw, dict) or not raw:
        raise HTTPException(400, "grants: expected {project: role, ...} with at least one project")
    grants = {str(p): _role(r, f"grants.{p}") for p, r in raw.items()}
    for project in grants:
        _must_admin(request, project)
    return _db_call(request, users.add_user, name, password, grants)


@admin_router.put("/access/users/{name}/grants/{project}", summary="Set (role) or take away (role: null) a grant")
def set_grant(request: Request, name: Annotated[str, Path()], project: Annotated[str, Path()], body: Json) -> Any:
    body = _object(body)
    role = None if body.get("role") is None else _role(body.get("role"))
    _must_admin(request, project)
    _existing_user(request, name)
    return _db_call(request, users.set_role, name, project, role)


@admin_router.delete("/access/users/{name}", summary="Remove a user (needs the admin role on all its projects)")
def remove_user(request: Request, name: Annotated[str, Path()]) -> Any:
    found = _existing_user(request, name)
    for project in found["grants"]:
        _must_admin(request, project)
    _db_call(request, users.remove_user, name)
    return {"removed": name}


def _existing_user(request: Request, name: str) -> dict[str, Any]:
    cur = _access(request).db.cursor()
    try:
        found = users.user(cur, name)
    finally:
        cur.close()
    if found is None or _visible_user(found, _admin_projects(request)) is None:
        raise HTTPException(404, f"no user {name!r}")
    return found


# -- keys -----------------------------------------------------------------------------------------------------


@admin_router.get("/access/keys", summary="API keys made by admins (never the key itself), of your projects")
def list_keys(request: Request) -> Any:
    cur = _access(request).db.cursor()
    try:
        return {"keys": users.list_keys(cur, _admin_projects(request))}
    finally:
        cur.close()


@admin_router.post("/access/keys", status_code=201, summary="Make a key for one project and role: shown once")
def add_key(request: Request, body: Json) -> Any:
    body = _object(body)
    project = _text(body, "project") or ""
    role = _role(body.get("role"))
    _must_admin(request, project)
    key, shown = _db_call(request, users.add_key, project, role, _text(body, "note", required=False))
    return {**shown, "key": key}


@admin_router.delete("/access/keys/{key_id}", summary="Revoke a key")
def remove_key(request: Request, key_id: Annotated[str, Path(max_length=64)]) -> Any:
    _db_call(request, users.remove_key, key_id, _admin_projects(request))
    return {"revoked": key_id}


# -- audit ----------------------------------------------------------------------------------------------------


@admin_router.get("/audit", summary="The audit log (who, when, what, before/after), newest first; export as csv")
def audit_log(
    request: Request,
    kind: Annotated[str | None, Query(description="only changes of this kind: rule, silence, user, key, ...")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    format: Annotated[str, Query(description="json (default), csv or jsonl")] = "json",
) -> Any:
    if format not in ("json", "csv", "jsonl"):
        raise HTTPException(400, f"format: expected json, csv or jsonl, got {format!r}")
    cur = _access(request).db.cursor()
    try:
        rows = audit.entries(cur, _admin_projects(request), kind, limit)
    finally:
        cur.close()
    if format == "json":
        return {"entries": rows}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    disposition = {"content-disposition": f'attachment; filename="callscope-audit-{stamp}.{format}"'}
    if format == "jsonl":
        body = b"".join(orjson.dumps(r, default=str) + b"\n" for r in rows)
        return Response(body, media_type="application/x-ndjson", headers=disposition)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(audit.COLUMNS)
    for r in rows:
        writer.writerow(
            [
                *(r[c] for c in audit.COLUMNS[:-2]),
                *(orjson.dumps(r[c]).decode() if r[c] is not None else "" for c in ("before", "after")),
            ]
        )
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=disposition)
