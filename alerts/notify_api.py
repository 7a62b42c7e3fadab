"""Notification routes of the API (mounted under /api/v1 by the server): silences (list, create, expire), the
notifications with their delivery status and failure reasons, the aggregation groups, the receivers (secrets
masked) and the digests (list, send now). Bad input is a 400 whose message starts with the field.

These objects span projects (a silence's matchers, a digest's sections, the outbox's messages), so they need the
role on every project: viewer to read, editor to change. Each change to a silence is audited once, in the
transaction that makes it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import duckdb
import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from alerts import outbox, silences
from alerts.digest_schedule import latest_slot
from alerts.notify_service import NotifyService
from alerts.outbox import Status
from alerts.silences import SilenceError, SilenceState
from analytics.access import principal_of, requires
from core import audit
from core.access import Role
from core.store import transaction


def notify_routers(service: NotifyService) -> list[APIRouter]:
    """The reading routes (viewer on every project) and the changing ones (editor on every project)."""
    router = APIRouter(tags=["notifications"], dependencies=[requires(Role.viewer, everywhere=True)])
    write_router = APIRouter(tags=["notifications"], dependencies=[requires(Role.editor, everywhere=True)])

    @contextlib.contextmanager
    def cursor() -> Iterator[duckdb.DuckDBPyConnection]:
        cur = service.db.cursor()
        try:
            cur.execute("SET TimeZone = 'UTC'")
            yield cur
        finally:
            cur.close()

    @router.get("/alerts/silences", summary="Silences, newest first, with their state (pending, active, expired)")
    def list_silences(
        state: Annotated[str | None, Query(description="pending, active or expired")] = None,
    ) -> dict[str, Any]:
        if state is not None and state not in {s.value for s in SilenceState}:
            raise HTTPException(400, f"state: expected pending, active or expired, got {state!r}")
        now = datetime.now(UTC)
        with cursor() as cur:
            found = silences.list_silences(cur)
        return {"silences": [s.as_dict(now) for s in found if state is None or s.state(now).value == state]}

    @write_router.post(
        "/alerts/silences",
        status_code=201,
        summary="Create a silence: matchers, ends_at or duration, created_by, comment (starts_at optional)",
    )
    async def create_silence(request: Request) -> dict[str, Any]:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise HTTPException(400, f"body: not valid JSON ({exc})") from None
        now = datetime.now(UTC)
        try:
            silence = silences.parse_silence(body, now)
        except SilenceError as exc:
            raise HTTPException(400, str(exc)) from None

        actor = principal_of(request)

        def store() -> None:
            with transaction(service.db, service.sharing.lock) as cur:
                silences.insert(cur, silence)
                audit.record(cur, actor, "create", "silence", silence.id, after=silence.as_dict(now))

        await run_in_threadpool(store)
        return silence.as_dict(now)

    @write_router.delete("/alerts/silences/{silence_id}", summary="Expire a silence now (a pending one never starts)")
    def expire_silence(request: Request, silence_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
        now = datetime.now(UTC)
        try:
            with transaction(service.db, service.sharing.lock) as cur:
                before = silences.get(cur, silence_id)
                silence = silences.expire(cur, silence_id, now)
                if silence is not None and before is not None:
                    audit.record(
                        cur,
                        principal_of(request),
                        "expire",
                        "silence",
                        silence_id,
                        before=before.as_dict(now),
                        after=silence.as_dict(now),
                    )
        except SilenceError as exc:
            raise HTTPException(409, str(exc)) from None
        if silence is None:
            raise HTTPException(404, f"no silence {silence_id}")
        return silence.as_dict(now)

    @router.get("/alerts/notifications", summary="Notifications (the outbox), newest first, with delivery status")
    def list_notifications(
        status: Annotated[str | None, Query(description="pending, retrying, sent or failed")] = None,
        kind: Annotated[str | None, Query(description="alert or digest")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        if status is not None and status not in {s.value for s in Status}:
            raise HTTPException(400, f"status: expected pending, retrying, sent or failed, got {status!r}")
        if kind is not None and kind not in ("alert", "digest"):
            raise HTTPException(400, f"kind: expected alert or digest, got {kind!r}")
        with cursor() as cur:
            rows = outbox.list_rows(cur, status=status, kind=kind, limit=limit)
            counts = outbox.counts(cur)
        return {"counts": counts, "notifications": [r.as_dict() for r in rows]}

    @router.get("/alerts/notifications/{notification_id}", summary="One notification with what it says")
    def get_notification(notification_id: int) -> dict[str, Any]:
        with cursor() as cur:
            row = outbox.get(cur, notification_id)
        if row is None:
            raise HTTPException(404, f"no notification {notification_id}")
        return row.as_dict(with_payload=True)

    @router.get("/alerts/groups", summary="Aggregation groups: their alerts' route, receiver and next flush")
    def list_groups() -> dict[str, Any]:
        with cursor() as cur:
            groups = cur.execute(
                "SELECT group_key, route_id, receiver, group_labels, created_at, next_flush_at, last_flush_at"
                " FROM notify_groups ORDER BY created_at"
            ).fetchall()
            entries = cur.execute(
                "SELECT group_key, channel, firing, resolved, notified_at, outbox_id FROM notify_log"
                " ORDER BY group_key, channel"
            ).fetchall()
        log: dict[str, list[dict[str, Any]]] = {}
        for key, channel, firing, resolved, notified_at, outbox_id in entries:
            log.setdefault(key, []).append(
                {
                    "channel": channel,
                    "firing": firing,
                    "resolved": resolved,
                    "notified_at": notified_at,
                    "notification": outbox_id,
                }
            )
        return {
            "groups": [
                {
                    "group_key": g[0],
                    "route": g[1],
                    "receiver": g[2],
                    "labels": dict(g[3]),
                    "created_at": g[4],
                    "next_flush_at": g[5],
                    "last_flush_at": g[6],
                    "log": log.get(g[0], []),
                }
                for g in groups
            ]
        }

    @router.get("/alerts/receivers", summary="Receivers, routes, inhibit rules and SMTP settings (secrets masked)")
    def receivers() -> dict[str, Any]:
        return service.describe()

    @router.get("/digests", summary="Scheduled digests with their last sent and next slot")
    def list_digests() -> dict[str, Any]:
        now = datetime.now(UTC)
        with cursor() as cur:
            last = dict(cur.execute("SELECT name, last_slot FROM digest_state").fetchall())
        out = []
        for d in service.config.digests.values():
            upcoming = d.trigger().get_next_fire_time(None, now)
            out.append(
                d.describe()
                | {"last_slot": last.get(d.name), "latest_slot": latest_slot(d, now), "next_slot": upcoming}
            )
        return {"digests": out}

    @write_router.post(
        "/digests/{name}/send", status_code=202, summary="Queue a one-off digest of the period up to now"
    )
    def send_digest(name: str) -> Response:
        if name not in service.config.digests:
            known = ", ".join(service.config.digests) or "none configured"
            raise HTTPException(404, f"name: no digest named {name!r} (known: {known})")
        outbox_id = service.digests.send_now(name)
        body = {"id": outbox_id, "status": "pending", "url": f"alerts/notifications/{outbox_id}"}
        return Response(orjson.dumps(body), status_code=202, media_type="application/json")

    return [router, write_router]
