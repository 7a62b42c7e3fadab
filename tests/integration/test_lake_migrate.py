"""`callscope migrate --to LAKE.toml` copies a stopped embedded store into a lake: interrupted mid-way and run again it
goes on where it stopped (no row twice), the counts verify, and a node on the lake answers the read API exactly as
a server on the embedded file does over the same calls."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pytest

from core import lake
from core.lake_copy import PROGRESS, copy_store
from core.store import connect
from sample_data.bulk import write_calls
from tests.helpers import ROOT, ServerProcess
from tests.pg import lake_env

pytestmark = pytest.mark.lake

CALLS = 6000


class Interrupted(Exception):
    pass


def _migrate(src: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "callscope.cli", "migrate", "--data-dir", str(src), "--to", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _row_key(row: dict) -> str:
    return str(row.get("model", row.get("bucket", "")))


def test_migrate_copies_resumes_verifies_and_the_lake_answers_like_the_file(tmp_path, postgres):
    src = tmp_path / "embedded"
    db = connect(src / "callscope.duckdb")
    write_calls(db, n_calls=CALLS, days=2, end=datetime.now(UTC), seed=7)
    db.execute("CHECKPOINT")
    source_rows = db.execute("SELECT trace_id || span_id, cost_usd, input_tokens FROM calls").fetchall()
    db.close()

    conninfo = postgres.new_database()
    data = tmp_path / "lake-data"
    config = tmp_path / "lake.toml"
    config.write_text(f"store = 'lake'\nlake_catalog = '{conninfo}'\nlake_data_path = '{data}'\n")

    # An interrupted copy: two chunks of calls committed, then the process stops.
    chunks = []

    def stop_after_two(rows: int) -> None:
        chunks.append(rows)
        if len(chunks) == 2:
            raise Interrupted

    lake_db = lake.connect(lake.LakeConfig(conninfo, str(data)))
    with pytest.raises(Interrupted):
        copy_store(lake_db, src / "callscope.duckdb", chunk_rows=1000, progress=stop_after_two)
    partial = lake_db.execute("SELECT count(*) FROM calls").fetchone()[0]
    assert 0 < partial < CALLS
    assert lake_db.execute(f"SELECT count(*) FROM {PROGRESS}").fetchone()[0] >= 1
    lake_db.close()

    done = _migrate(src, config)
    assert done.returncode == 0, done.stderr
    counts = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if " -> " in line}
    assert counts["calls"] == [f"{CALLS:,}", "->", f"{CALLS:,}", "ok"], done.stdout
    assert all(c[-1] == "ok" and c[0] == c[2] for c in counts.values()), done.stdout

    check = lake.connect(lake.LakeConfig(conninfo, str(data)))
    copied = check.execute("SELECT trace_id || span_id, cost_usd, input_tokens FROM calls").fetchall()
    tables = {
        r[0] for r in check.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'lake'").fetchall()
    }
    check.close()
    assert PROGRESS not in tables  # dropped once every count verified
    keys = [r[0] for r in copied]
    assert len(keys) == len(set(keys)) == CALLS
    assert set(keys) == {r[0] for r in source_rows}
    cost = np.array([r[1] for r in source_rows if r[1] is not None])
    assert np.isclose(sum(r[1] for r in copied if r[1] is not None), cost.sum())

    # Again: nothing left to copy, nothing copied twice.
    again = _migrate(src, config)
    assert again.returncode == 2 and "already holds" in again.stderr

    # The same questions to a server on the file and to a node on the lake: the same answers.
    embedded = ServerProcess(src).start(timeout=60)
    node = ServerProcess(tmp_path / "node", env=lake_env(conninfo, data)).start(timeout=90)
    questions = [
        {"last": "7d", "metrics": "calls,cost_usd,input_tokens,error_rate"},
        {"last": "7d", "group_by": "model", "metrics": "calls,cost_usd,latency_p50,latency_p95"},
        {"last": "7d", "bucket": "hour", "metrics": "calls,cost_usd"},
    ]
    for params in questions:
        a = httpx.get(embedded.http_url + "/api/v1/stats", params=params, timeout=60).json()["data"]
        b = httpx.get(node.http_url + "/api/v1/stats", params=params, timeout=60).json()["data"]
        a, b = sorted(a, key=_row_key), sorted(b, key=_row_key)
        assert len(a) == len(b) > 0, params
        for ra, rb in zip(a, b, strict=True):
            assert ra.keys() == rb.keys()
            for k in ra:
                if isinstance(ra[k], float):
                    assert rb[k] == pytest.approx(ra[k], rel=1e-9, abs=1e-12), (params, k)
                else:
                    assert rb[k] == ra[k], (params, k)
    total = httpx.get(node.http_url + "/api/v1/stats", params=questions[0], timeout=60).json()["data"][0]
    assert total["calls"] == CALLS
    assert total["input_tokens"] == int(np.sum([r[2] or 0 for r in source_rows]))
    assert embedded.stop() == 0
    assert node.stop() == 0
    duckdb.connect(str(src / "callscope.duckdb"), read_only=True).close()  # the file is intact and free
