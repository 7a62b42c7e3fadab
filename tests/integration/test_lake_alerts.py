"""Alerts and notification on a lake: several `callscope serve` nodes on one DuckLake (a real PostgreSQL catalog,
Parquet in a shared folder), a real rules file, a real SMTP server (aiosmtpd) and a real webhook receiver; calls
sent by the OpenTelemetry SDK's OTLP exporter make rules fire.

- The must-show: the node holding the job lease is SIGKILLed while the firing notifications are being delivered;
  another node takes the lease within the stated bound and delivers the rest; the resolve notifications follow;
  every expected e-mail and webhook arrives, none twice (counted by Message-ID / Idempotency-Key and by alert).
- Any node takes the API's alert changes (rules, silences) and every node sees them; the audit rows of changes made
  on different nodes get distinct ids (a PostgreSQL sequence in the catalog: DuckLake has none).
- In-process, on a real lake: a node whose lease session broke cannot write a job's state (the fence inside the
  commit lock), and a notification whose acceptance the ledger holds is marked sent, not sent again.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.alert_calls import calls_in_slot, export_calls, slot_start
from tests.helpers import ServerProcess
from tests.notify_parts import SmtpSink, StallingInbox, WebhookReceiver, notify_toml, wait_until
from tests.pg import lake_env

pytestmark = [pytest.mark.lake, pytest.mark.slow]

LEASE_S = 0.5
CLAIM_S = 3.0
TAKEOVER_BOUND_S = 10.0  # as the lease test: lake_lease_seconds plus the next node's try, with margin for load
SERVICES = [f"svc-{i}" for i in range(6)]
RULE = "HighErrorRate"
RULES = f"""\
rules:
  - name: {RULE}
    metric: error_rate
    group_by: [service]
    window: 5m
    op: ">"
    critical: 0.05
    min_calls: 10
    for: 0s
    interval: 10s
    summary: "error rate {{{{value}}}} over {{{{window}}}}"
"""
BREACH = [i % 8 == 5 for i in range(24)]  # 3 of 24 fail: 12.5% > 5%
CLEAR = [False] * 56  # then 3 of 80: 3.75% <= 5%, resolved


def _config(data: Path, webhook_url: str) -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "alerts.yaml").write_text(RULES)
    (data / "callscope.toml").write_text(notify_toml(webhook_url))


def _nodes(tmp_path: Path, conninfo: str, count: int, smtp_port: int, webhook_url: str) -> list[ServerProcess]:
    nodes = []
    for i in range(count):
        data = tmp_path / f"node-{i}"
        _config(data, webhook_url)
        env = lake_env(
            conninfo,
            tmp_path / "lake-data",
            CALLSCOPE_LAKE_NODE_NAME=f"node-{i}",
            CALLSCOPE_LAKE_LEASE_SECONDS=str(LEASE_S),
            CALLSCOPE_LAKE_NOTIFY_CLAIM_SECONDS=str(CLAIM_S),
            CALLSCOPE_SMTP_HOST="127.0.0.1",
            CALLSCOPE_SMTP_PORT=str(smtp_port),
            CALLSCOPE_INGEST_WORKERS="0",
            CALLSCOPE_BATCH_MAX_WAIT_MS="20",
        )
        nodes.append(ServerProcess(data, env=env).start(timeout=90))
    return nodes


def _health(node: ServerProcess) -> dict:
    return httpx.get(node.http_url + "/healthz", timeout=10).json()


def _api(node: ServerProcess, path: str, **params) -> dict:
    response = httpx.get(node.http_url + "/api/v1" + path, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _holding(nodes: list[ServerProcess], alive: list[int]) -> list[int]:
    """The nodes (of `alive`) that say they hold the job lease: never more than one."""
    held = [i for i in alive if _health(nodes[i])["holds_job_lease"]]
    assert len(held) <= 1, f"two nodes hold the job lease: {held}"
    return held


def _kind(subject: str) -> str:
    return "firing" if subject.startswith("[FIRING") else "resolved" if subject.startswith("[RESOLVED") else subject


def test_the_lease_holder_killed_mid_delivery_every_notification_arrives_once(tmp_path, postgres):
    inbox = StallingInbox()
    sink = SmtpSink(inbox=inbox).start()
    hooks = WebhookReceiver().start()
    nodes = _nodes(tmp_path, postgres.new_database(), 3, sink.port, hooks.url)
    alive = [0, 1, 2]
    try:
        [holder] = wait_until(lambda: _holding(nodes, alive), timeout=30, what="a lease holder")
        feeder = next(i for i in alive if i != holder)  # calls go to a node that is not the holder
        slot = slot_start(datetime.now(UTC))
        calls = [c for s in SERVICES for c in calls_in_slot(slot, BREACH, service=s)]
        export_calls(nodes[feeder].http_url, calls)

        # SIGKILL the holder in the middle of the storm's delivery: while the SMTP server holds the first e-mail's
        # DATA unanswered (its row claimed by the holder, the message on the wire, not yet accepted)
        assert inbox.stalled.wait(60), "no e-mail was sent"
        nodes[holder].kill()
        killed_at = time.monotonic()
        inbox.release.set()
        arrived_at_kill = len(sink.messages) + len(hooks.delivered())
        alive.remove(holder)
        assert arrived_at_kill < 2 * len(SERVICES), "the storm was delivered before the kill: nothing was tested"
        wait_until(lambda: inbox.dropped == 1, timeout=10, what="the server to drop the killed sender's e-mail")

        [new_holder] = wait_until(lambda: _holding(nodes, alive), timeout=TAKEOVER_BOUND_S, what="a new lease holder")
        took = time.monotonic() - killed_at
        wait_until(
            lambda: len(sink.messages) >= len(SERVICES) and len(hooks.delivered()) >= len(SERVICES),
            timeout=60,
            what="every firing notification",
        )
        rest = time.monotonic() - killed_at
        print(
            f"lease moved to node-{new_holder} {took:.2f} s after node-{holder} was killed with {arrived_at_kill}"
            f" of {2 * len(SERVICES)} notifications delivered; all delivered {rest:.2f} s after the kill"
        )

        # the alerts resolve: the new holder evaluates them and tells every channel once
        clear_slot = slot_start(datetime.now(UTC))
        export_calls(nodes[feeder].http_url, [c for s in SERVICES for c in calls_in_slot(clear_slot, CLEAR, service=s)])
        wait_until(
            lambda: len(sink.messages) >= 2 * len(SERVICES) and len(hooks.delivered()) >= 2 * len(SERVICES),
            timeout=60,
            what="every resolve notification",
        )
        # every queued notification is recorded sent (none pending, retrying or failed) on every node
        for i in alive:
            wait_until(
                lambda i=i: _api(nodes[i], "/alerts/notifications")["counts"] == {"sent": 4 * len(SERVICES)},
                timeout=30,
                what=f"node-{i}: 24 notifications recorded sent",
            )
        time.sleep(2 * CLAIM_S)  # a claim the dead node left has run out: a second copy would be sent by now

        emails, delivered = sink.messages, hooks.delivered()
        ids = [m["Message-ID"] for m in emails]
        keys = [h.headers["idempotency-key"] for h in delivered]
        assert len(ids) == len(set(ids)) == 2 * len(SERVICES), Counter(ids).most_common(3)
        assert len(keys) == len(set(keys)) == 2 * len(SERVICES), Counter(keys).most_common(3)
        # by alert: each service's alert fired and resolved, and each channel heard each once
        by_alert_mail = Counter((s, _kind(m["Subject"])) for m in emails for s in SERVICES if f" {s} " in m["Subject"])
        by_alert_hook = Counter((h.body["alerts"][0]["labels"]["service"], h.body["status"]) for h in delivered)
        expected = Counter({(s, k): 1 for s in SERVICES for k in ("firing", "resolved")})
        assert by_alert_mail == expected
        assert by_alert_hook == expected
        # the outbox as the API shows it: one row per message, unique ids (the catalog's sequence)
        rows = _api(nodes[alive[0]], "/alerts/notifications", limit=100)["notifications"]
        assert len({r["id"] for r in rows}) == len(rows) == 4 * len(SERVICES)
        history = _api(nodes[alive[0]], "/alerts/history", rule=RULE)["history"]
        # each service's alert fired once and resolved once, whichever node evaluated (before data came, the rule's
        # series without a service went nodata and back: not an alert of a service)
        fired = Counter((h["labels"]["service"], h["to_state"]) for h in history if "service" in h["labels"])
        assert fired == Counter({(s, k): 1 for s in SERVICES for k in ("firing", "normal")}), fired
        assert took < TAKEOVER_BOUND_S
    finally:
        for i in alive:
            nodes[i].stop()
        sink.stop()
        hooks.stop()


def test_alert_changes_on_any_node_are_seen_by_every_node_and_audited_with_distinct_ids(tmp_path, postgres):
    hooks = WebhookReceiver().start()
    sink = SmtpSink().start()
    nodes = _nodes(tmp_path, postgres.new_database(), 2, sink.port, hooks.url)
    try:
        rule = {"name": "SlowCalls", "metric": "latency_p95", "op": ">", "critical": 5000, "window": "5m"}
        created = httpx.post(nodes[0].http_url + "/api/v1/alerts/rules", json=rule, timeout=30)
        assert created.status_code == 201, created.text
        seen = _api(nodes[1], "/alerts/rules")["rules"]
        assert {r["name"] for r in seen} == {RULE, "SlowCalls"}  # the file's rule and the API's, on the other node
        again = httpx.post(nodes[1].http_url + "/api/v1/alerts/rules", json=rule, timeout=30)
        assert again.status_code == 409  # the name is taken, whichever node is asked
        silence = {"matchers": ['service="svc-1"'], "duration": "1h", "created_by": "test", "comment": "maintenance"}
        made = httpx.post(nodes[1].http_url + "/api/v1/alerts/silences", json=silence, timeout=30)
        assert made.status_code == 201, made.text
        assert [s["id"] for s in _api(nodes[0], "/alerts/silences")["silences"]] == [made.json()["id"]]
        bad = httpx.post(nodes[0].http_url + "/api/v1/alerts/silences", json={"matchers": []}, timeout=30)
        assert bad.status_code == 400 and "matchers" in bad.text
        deleted = httpx.delete(nodes[1].http_url + "/api/v1/alerts/rules/SlowCalls", timeout=30)
        assert deleted.status_code == 200, deleted.text
        assert {r["name"] for r in _api(nodes[0], "/alerts/rules")["rules"]} == {RULE}
        audit = _api(nodes[0], "/audit")["entries"]
        assert [(a["action"], a["object_kind"]) for a in audit] == [
            ("delete", "rule"),
            ("create", "silence"),
            ("create", "rule"),
        ]
        ids = [a["id"] for a in audit]
        assert all(isinstance(i, int) for i in ids) and ids == sorted(set(ids), reverse=True)
    finally:
        for node in nodes:
            node.stop()
        sink.stop()
        hooks.stop()


# -- in-process, on a real lake ----------------------------------------------------------------------------------


def _lake_node(tmp_path: Path, conninfo: str):
    from callscope.lake_node import LakeNode
    from core import lake
    from core.settings import load_settings

    settings = load_settings(
        {
            "data_dir": str(tmp_path / "data"),
            "store": "lake",
            "lake_catalog": conninfo,
            "lake_data_path": str(tmp_path / "lake-data"),
            "lake_node_name": "inproc",
            "lake_lease_seconds": 0.2,
            "lake_notify_claim_seconds": CLAIM_S,
        }
    )
    db = lake.connect(lake.LakeConfig.from_settings(settings))
    return LakeNode(settings, db), db


def _queue_one(db, sharing) -> int:
    from alerts import outbox
    from core.store import transaction

    message = outbox.NewMessage("k1", "alert", "oncall", "oncall/webhook/0", "webhook", {"url": "x"}, {}, "s")
    with transaction(db, sharing.lock) as cur:
        ids = outbox.enqueue_many(cur, [message, message], datetime.now(UTC))
    with transaction(db, sharing.lock) as cur:
        assert outbox.enqueue_many(cur, [message], datetime.now(UTC)) == {}  # queued before: left out
    assert list(ids) == ["k1"]
    return ids["k1"]


def test_a_node_whose_lease_session_broke_writes_no_job_state(tmp_path, postgres):
    from core.catalog import LeaseLost

    conninfo = postgres.new_database()
    node, db = _lake_node(tmp_path, conninfo)
    try:
        node.start_lease(lambda: [])
        wait_until(lambda: node.holds_lease, timeout=10, what="the lease")
        with node.job_commit():
            pass  # held: the job may write
        assert node.sharing().still_held()
        with psycopg.connect(conninfo, autocommit=True) as pg:  # the lease's session breaks (as in a partition)
            pg.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'inproc'"
            ).fetchall()
        assert not node.sharing().still_held()  # a delivery batch stops before its next send
        with pytest.raises(LeaseLost), node.job_commit():
            raise AssertionError("a job wrote after its node lost the lease")
    finally:
        node.stop()
        db.close()


def test_an_acceptance_in_the_ledger_is_marked_sent_and_not_sent_again(tmp_path, postgres):
    from alerts.delivery import DeliveryWorker

    node, db = _lake_node(tmp_path, postgres.new_database())
    try:
        node.start_lease(lambda: [])
        wait_until(lambda: node.holds_lease, timeout=10, what="the lease")
        sharing = node.sharing()
        first = _queue_one(db, sharing)
        sent: list[int] = []

        def webhook(row, accepted) -> None:
            sent.append(row.id)
            accepted("202")

        worker = DeliveryWorker(db, {"webhook": webhook}, sharing=sharing)
        # a previous holder's receiver accepted it, and the holder died before the lake said so
        node.ledger.accepted(first, "200 from the previous holder")
        counts = worker.run_once(now=datetime.now(UTC) + timedelta(seconds=1))
        assert (counts.sent, sent) == (1, [])
        row = db.execute("SELECT status, attempts, last_error FROM notify_outbox WHERE id = ?", [first]).fetchall()
        assert row == [("sent", 0, "200 from the previous holder")]
        # a claimed row is left alone by other senders until its claim runs out
        from alerts import outbox
        from core.store import transaction

        message = outbox.NewMessage("k2", "alert", "oncall", "oncall/webhook/0", "webhook", {"url": "x"}, {}, "s")
        with transaction(db, sharing.lock) as cur:
            second = outbox.enqueue_many(cur, [message], datetime.now(UTC))["k2"]
        assert second > first
        now = datetime.now(UTC) + timedelta(seconds=1)
        [due] = [r for r in outbox.due(db.cursor(), now) if r.id == second]
        with sharing.job_lock(), transaction(db) as cur:
            assert outbox.claim(cur, due, now, now + timedelta(seconds=CLAIM_S))
        with sharing.job_lock(), transaction(db) as cur:
            assert not outbox.claim(cur, due, now, now + timedelta(seconds=CLAIM_S))  # taken: its attempts moved on
        assert [r.id for r in outbox.due(db.cursor(), now)] == []
        later = now + timedelta(seconds=CLAIM_S + 1)
        assert worker.run_once(now=later).sent == 1 and sent == [second]
        row = db.execute("SELECT status, attempts, last_error FROM notify_outbox WHERE id = ?", [second]).fetchall()
        assert row == [("sent", 2, "202")]  # the claim that ran out, then the batch's; marked with the batch
        assert node.ledger.accepted_of([second]) == {second: "202"}
    finally:
        node.stop()
        db.close()


def test_the_lake_id_sequences_move_past_copied_ids_and_never_back(tmp_path, postgres):
    """Rows copied in by `callscope migrate` keep their ids; the catalog's sequence moves past the largest, and a
    second preparation (another node starting) never moves it back."""
    from core import ids, lake
    from core.catalog import Catalog

    conninfo = postgres.new_database()
    db = lake.connect(lake.LakeConfig(conninfo, str(tmp_path / "lake-data")))
    try:
        cur = db.cursor()
        assert ids.take(cur, "audit_log_id", 3) == [1, 2, 3]
        cur.execute(
            "INSERT INTO audit_log (id, changed_at, actor, actor_kind, action, object_kind, object_id)"
            " VALUES (500, now(), 'a', 'user', 'create', 'rule', 'r')"
        )
        with Catalog(conninfo) as catalog:
            ids.prepare_lake(cur, catalog)
            assert ids.take(cur, "audit_log_id", 2) == [501, 502]
            ids.prepare_lake(cur, catalog)
        assert ids.take(cur, "audit_log_id", 1) == [503]
        assert ids.take(cur, "notify_outbox_id", 1) == [1]  # each table its own sequence
        with pytest.raises(ValueError):
            ids.take(cur, "calls", 1)
    finally:
        db.close()
