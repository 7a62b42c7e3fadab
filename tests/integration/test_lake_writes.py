"""Writes other than ingest and alerts on a lake: budgets (and every other core.store.transaction) made on several
nodes at once are serialised by the catalog's commit lock, so a name stays unique, ids stay distinct and the config
file's budgets are stored once when nodes start together (DuckLake alone let two concurrent transactions update the
same row and both commit)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers import ServerProcess
from tests.pg import lake_env

pytestmark = [pytest.mark.lake, pytest.mark.slow]

CONFIG_BUDGETS = """
[[budgets]]
name = "config-monthly"
amount_usd = 500
period = "month"

[[budgets]]
name = "config-weekly"
amount_usd = 100
period = "week"
"""


def _start_nodes(tmp_path: Path, conninfo: str, count: int) -> list[ServerProcess]:
    """`count` nodes started at the same moment (each syncs the config file's budgets at start)."""
    nodes = []
    for i in range(count):
        data = tmp_path / f"node-{i}"
        data.mkdir(parents=True)
        (data / "callscope.toml").write_text(CONFIG_BUDGETS)
        env = lake_env(conninfo, tmp_path / "lake-data", CALLSCOPE_LAKE_NODE_NAME=f"node-{i}")
        nodes.append(ServerProcess(data, env={**env, "CALLSCOPE_INGEST_WORKERS": "0"}))
    # the first start creates the lake's schema; then the others start together
    nodes[0].start(timeout=90)
    threads = [threading.Thread(target=n.start, kwargs={"timeout": 90}) for n in nodes[1:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return nodes


def _budgets(node: ServerProcess) -> list[dict]:
    response = httpx.get(node.http_url + "/api/v1/budgets", timeout=60)
    assert response.status_code == 200, response.text
    return [b["budget"] for b in response.json()["budgets"]]


def test_budgets_written_on_several_nodes_at_once_stay_unique(tmp_path, postgres):
    nodes = _start_nodes(tmp_path, postgres.new_database(), 3)
    try:
        for node in nodes:
            configured = sorted(b["name"] for b in _budgets(node) if b["source"] == "config")
            assert configured == ["config-monthly", "config-weekly"]  # once each, whichever node synced last

        def create(i: int) -> tuple[str, int]:
            name = "shared" if i % 4 == 0 else f"budget-{i}"
            response = httpx.post(
                nodes[i % len(nodes)].http_url + "/api/v1/budgets",
                json={"name": name, "amount_usd": 10 + i},
                timeout=60,
            )
            return name, response.status_code

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(create, range(24)))
        shared = [status for name, status in results if name == "shared"]
        assert sorted(shared) == [201] + [400] * (len(shared) - 1), results  # one creation, the rest refused
        assert all(status == 201 for name, status in results if name != "shared"), results

        for node in nodes:
            stored = _budgets(node)
            names = [b["name"] for b in stored]
            assert sorted(names) == sorted({name for name, _ in results} | {"config-monthly", "config-weekly"})
            ids = [b["budget_id"] for b in stored]
            assert len(set(ids)) == len(ids), ids
    finally:
        for node in nodes:
            node.stop()
