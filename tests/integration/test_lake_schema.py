"""The lake's schema is the embedded store's (the same migrations, applied keyless): every table and column, with its
type, whatever other migrations add; only keys and sequences are left out. A second node opening the lake applies
nothing again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from core import lake
from core.migrations import MIGRATIONS
from core.store import applied_migrations, connect
from tests.helpers import ROOT, ServerProcess
from tests.pg import lake_env

pytestmark = pytest.mark.lake


def _schema(db, catalog: str) -> dict[str, list[tuple[str, str]]]:
    rows = db.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = ?"
        " AND schema_name = 'main' ORDER BY table_name, column_index",
        [catalog],
    ).fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in rows:
        out.setdefault(table, []).append((column, kind))
    return out


def test_the_lake_has_the_embedded_schema_without_keys(tmp_path, postgres):
    embedded = connect(tmp_path / "s.duckdb")
    conninfo = postgres.new_database()
    opened: list = []

    def open_lake() -> None:  # two nodes starting at once: one migrates, the other waits for it
        opened.append(lake.connect(lake.LakeConfig(conninfo, str(tmp_path / "lake"))))

    threads = [threading.Thread(target=open_lake) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(opened) == 2
    db = opened[0]
    assert _schema(db, "lake") == _schema(embedded, "s")
    assert applied_migrations(db) == sorted(name for name, _ in MIGRATIONS)
    (n,) = db.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert n == len(MIGRATIONS)  # applied once, not once per node
    keys = db.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE database_name = 'lake'"
        " AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
    ).fetchone()[0]
    assert keys == 0
    for d in opened:
        d.close()
    embedded.close()


def test_keyless_leaves_out_keys_and_sequences_only():
    assert lake.keyless("CREATE SEQUENCE s START 1") is None
    assert lake.keyless("CREATE TABLE t (a INT PRIMARY KEY, b VARCHAR UNIQUE, c INT NOT NULL)") == (
        "CREATE TABLE t (a INT, b VARCHAR, c INT NOT NULL)"
    )
    assert lake.keyless("CREATE TABLE t (a INT NOT NULL, b INT,\n PRIMARY KEY (a, b)\n)") == (
        "CREATE TABLE t (a INT NOT NULL, b INT\n)"
    )
    assert lake.keyless("CREATE TABLE t (id BIGINT NOT NULL DEFAULT nextval('s'), x INT)") == (
        "CREATE TABLE t (id BIGINT NOT NULL, x INT)"
    )
    assert lake.keyless("ALTER TABLE calls ADD COLUMN model VARCHAR") == "ALTER TABLE calls ADD COLUMN model VARCHAR"


def test_a_node_without_its_lake_settings_says_why_and_exits_2(tmp_path):
    base = [sys.executable, "-m", "callscope.cli", "serve", "--data-dir", str(tmp_path), "--store", "lake"]
    missing = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2
    assert "lake_catalog" in missing.stderr and "lake_data_path" in missing.stderr


def test_offline_commands_read_the_lake_or_refuse_it_saying_what_to_do(tmp_path, postgres):
    """`callscope export` without --server reads the lake beside a running node (a lake takes any number of
    processes); the commands that change a stopped store file refuse a lake and name the way that works."""
    from datetime import UTC, datetime

    from tests.alert_calls import calls_in_slot, export_calls, slot_start

    env = lake_env(postgres.new_database(), tmp_path / "lake")
    node = ServerProcess(tmp_path / "n", env=env).start(timeout=90)
    try:
        calls = calls_in_slot(slot_start(datetime.now(UTC)), [i % 4 == 0 for i in range(40)], service="exported")
        export_calls(node.http_url, calls)
        run_env = {**os.environ, **env}
        cli = [sys.executable, "-m", "callscope.cli"]
        out = subprocess.run(
            [*cli, "export", "--data-dir", str(tmp_path / "elsewhere"), "--format", "jsonl"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env=run_env,
        )
        assert out.returncode == 0, out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        assert len(rows) == len(calls) and {r["service"] for r in rows} == {"exported"}
        assert sum(r["status"] == "error" for r in rows) == sum(c.error for c in calls) == 10
        assert not (tmp_path / "elsewhere" / "callscope.duckdb").exists()  # no embedded file was made
        for argv, hint in (
            (["users", "list"], "/api/v1/access/users"),
            (["retention"], "POST /api/v1/retention/run"),
            (["delete-user", "u1"], "DELETE /api/v1/users/"),
            (["reprice", "--from", "2026-01-01T00:00:00Z"], "--server"),
            (["demo", "bulk", "--calls", "10"], "callscope migrate"),
        ):
            done = subprocess.run(
                [*cli, *argv, "--data-dir", str(tmp_path / "elsewhere")],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
                env=run_env,
            )
            assert done.returncode == 2, (argv, done.stderr)
            assert "store = lake" in done.stderr and hint in done.stderr, (argv, done.stderr)
        assert not (tmp_path / "elsewhere" / "callscope.duckdb").exists()
    finally:
        node.stop()
