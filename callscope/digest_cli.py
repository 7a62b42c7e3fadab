"""`callscope digest send --now`: a one-off digest. With the server running (it holds the store) the digest is
queued through its API and sent by its delivery worker; with the server stopped it is computed from the store,
queued in the outbox and delivered right away, so the outbox keeps the record either way."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import httpx

from alerts.delivery import DeliveryWorker, EmailSender, RetryPolicy
from alerts.digest_schedule import DigestScheduler
from alerts.notify_service import load_config
from alerts.outbox import get as get_row
from alerts.smtp import SmtpSettings


def send_now(settings, names: Sequence[str], server: str | None) -> int:
    config = load_config(settings)
    if not config.digests:
        print("callscope digest: no digests configured ([[digests]] in the config file)", file=sys.stderr)
        return 2
    unknown = [n for n in names if n not in config.digests]
    if unknown:
        print(f"callscope digest: no digest named {unknown[0]!r} (known: {', '.join(config.digests)})", file=sys.stderr)
        return 2
    chosen = list(names) or list(config.digests)
    if server:
        return _through_server(server, settings, chosen)
    from core.store import StoreLockedError, connect

    try:
        db = connect(settings.db_path)
    except StoreLockedError:
        return _through_server(settings.read_api_url, settings, chosen)
    try:
        scheduler = DigestScheduler(db, config.digests, settings.dashboard_link)
        ids = [scheduler.send_now(name) for name in chosen]
        worker = DeliveryWorker(db, {"email": EmailSender(SmtpSettings.from_settings(settings))}, RetryPolicy())
        worker.run_once()
        failed = 0
        for outbox_id in ids:
            row = get_row(db, outbox_id)
            assert row is not None
            print(f"digest {row.receiver.split(':', 1)[1]}: notification {row.id} {row.status.value}", end="")
            print(f" ({row.last_error})" if row.last_error else "")
            failed += row.status.value != "sent"
        if failed:
            print("the server's delivery worker retries the rest when it runs (callscope serve)", file=sys.stderr)
        return 1 if failed else 0
    finally:
        db.close()


def _through_server(base: str, settings, names: Sequence[str]) -> int:
    base = base.rstrip("/")
    if not base.endswith("/api/v1"):
        base += "/api/v1"
    # Sending a digest is a change on every project: a write key of every project ('*') may do it.
    everywhere = sorted(k for k, project in settings.write_keys.items() if project == "*")
    key = everywhere[0] if everywhere else settings.dashboard_read_key
    headers = {"authorization": f"Bearer {key}"} if key else {}
    for name in names:
        try:
            response = httpx.post(f"{base}/digests/{name}/send", headers=headers, timeout=120)
        except httpx.HTTPError as exc:
            print(f"callscope digest: cannot reach the server at {base}: {exc}", file=sys.stderr)
            return 2
        if response.status_code != 202:
            print(f"callscope digest: the server answered {response.status_code}: {response.text}", file=sys.stderr)
            return 2
        print(f"digest {name}: queued as notification {response.json()['id']} on the server")
    return 0
