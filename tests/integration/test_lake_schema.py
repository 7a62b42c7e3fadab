"""The lake's schema is the embedded store's (the same migrations, applied keyless): every table and column, with its
type, whatever other migrations add; only keys and sequences are left out. A second node opening the lake applies
nothing again."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from core import lake
from core.migrations import MIGRATIONS
from core.store import applied_migrations, connect
from tests.helpers import ROOT

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
