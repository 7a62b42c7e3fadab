"""Retention and storage routes: the policy, the last runs and the store's size per table (read), and the write
routes (run retention now, delete a user's calls), which need the admin role: running the policy now on every
project, deleting a user's calls on the project asked (or on every project when none is named). A deletion by
user is audited with a hash of the user id (the audit log must not keep what the request asked to forget)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import StringConstraints

from analytics import retention
from analytics.access import check_everywhere, check_project, principal_of, requires, visible_projects
from analytics.api_context import Api, ReadApi
from analytics.errors import QueryError
from analytics.jobs import SERVING_DUTY
from analytics.rollups import raw_floor
from analytics.timewin import from_us
from core import audit
from core.access import Role
from core.store import transaction

router = APIRouter(dependencies=[requires(Role.viewer)])
write_router = APIRouter(dependencies=[requires(Role.admin)])

UserId = Annotated[str, StringConstraints(min_length=1, max_length=512)]


def _policy(api: ReadApi) -> retention.Policy:
    return api.retention or retention.Policy()


def storage_info(api: ReadApi) -> dict[str, Any]:
    """The store's size per table (cached for 5 minutes: reading every table's storage info is not free)."""
    return api.storage_size().as_dict()


@router.get("/retention", summary="Retention policy per kind and project, the last runs, and where raw calls end")
def retention_info(request: Request, api: Api) -> dict[str, Any]:
    projects = visible_projects(request)
    with api.cursor() as db:
        floor = raw_floor(db)
        runs = retention.last_runs(db) if projects is None else []  # a run's counts span every project
        pruned = {p: us for p, us in retention.pruned_before(db).items() if projects is None or p in projects}
    return {
        "policy": _policy(api).as_dict(),
        "kinds": {k.name: k.help for k in retention.KINDS.values()},
        "rollups_only_before": from_us(floor).isoformat() if floor else None,
        "raw_calls_removed_before": {p: from_us(us).isoformat() for p, us in sorted(pruned.items())},
        "runs": runs,
    }


@router.get("/storage", summary="Bytes and rows per table, the file and its WAL")
def storage(request: Request, api: Api) -> dict[str, Any]:
    check_everywhere(request, Role.viewer)  # the whole store's tables, every project's rows
    return storage_info(api)


@write_router.post("/retention/run", summary="Run the retention policy now (dry_run: only count what it would remove)")
def run_retention(request: Request, api: Api, dry_run: Annotated[bool, Query()] = False) -> dict[str, Any]:
    check_everywhere(request, Role.admin)
    cur = api.db.cursor()  # not through the query slots: a run is long, and reads keep their slots
    try:
        cur.execute("SET TimeZone = 'UTC'")
        runner = retention.Runner(
            cur, _policy(api), batch_rows=api.retention_batch_rows, duty=SERVING_DUTY, checkpoint=False
        )
        report = runner.run(dry_run=dry_run)
        retention.record(cur, report, "api")
    finally:
        cur.close()
    api.storage_invalidate()
    return report.as_dict()


@write_router.delete("/users/{user_id}", summary="Delete every call of a user (and its content) for a privacy request")
def delete_user(
    request: Request,
    api: Api,
    user_id: UserId,
    project: Annotated[str | None, Query(description="only this project's calls (default: every project)")] = None,
) -> dict[str, Any]:
    if not user_id.strip():
        raise QueryError("user_id must not be blank")
    if project is None:
        check_everywhere(request, Role.admin)
    else:
        check_project(request, project, Role.admin)
    cur = api.db.cursor()
    try:
        cur.execute("SET TimeZone = 'UTC'")
        removed = retention.delete_user(cur, user_id, project)
    finally:
        cur.close()
    with transaction(api.db) as log:
        hashed = "sha256:" + hashlib.sha256(user_id.encode()).hexdigest()[:16]
        audit.record(
            log, principal_of(request), "delete", "user_data", hashed, after={"removed": removed}, project=project
        )
    api.storage_invalidate()
    return {"user_id": user_id, "project": project, "removed": removed}
