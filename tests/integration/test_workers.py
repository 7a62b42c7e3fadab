"""Ingest worker processes: they start with the server, leave with it (even when it is SIGKILLed), and a
worker that dies is replaced without losing the server."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import psutil
import pytest

from tests.helpers import ServerProcess, export_rows, post_otlp
from tests.load import genai_request


def _children(server: ServerProcess) -> list[psutil.Process]:
    """Every descendant: the workers and multiprocessing's resource tracker."""
    assert server.proc is not None
    return psutil.Process(server.proc.pid).children(recursive=True)


def _workers(server: ServerProcess) -> list[psutil.Process]:
    return [p for p in _children(server) if "spawn_main" in " ".join(p.cmdline())]


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE  # a dead child stays a zombie until the server reaps it
    except psutil.NoSuchProcess:
        return False


def _gone(procs: list[psutil.Process], timeout: float) -> bool:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return not alive


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """Servers a test starts; any still running at the end (a failed assertion) are stopped."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()


def test_workers_start_fast_and_stop_with_sigterm(tmp_path, servers):
    started = time.monotonic()
    server = ServerProcess(tmp_path / "data", env={"CALLSCOPE_INGEST_WORKERS": "2"})
    servers.append(server.start())
    assert time.monotonic() - started < 10  # healthy only once the workers are ready; usually ~1-2 s
    assert len(_workers(server)) == 2
    children = _children(server)
    body, _ = genai_request(1, 100)
    assert post_otlp(server.http_url, body).status_code == 200
    assert server.stop() == 0
    assert _gone(children, 10), "worker processes outlived a clean stop"


def test_workers_exit_when_the_server_is_killed(tmp_path, servers):
    server = ServerProcess(tmp_path / "data", env={"CALLSCOPE_INGEST_WORKERS": "2"})
    servers.append(server.start())
    assert len(_workers(server)) == 2
    children = _children(server)
    server.kill()  # SIGKILL: no chance to clean up
    assert _gone(children, 10), "orphaned processes after SIGKILL of the server"


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_dead_worker_is_replaced(tmp_path, servers):
    server = ServerProcess(tmp_path / "data", env={"CALLSCOPE_INGEST_WORKERS": "1"})
    servers.append(server.start())
    try:
        (worker,) = _workers(server)
        os.kill(worker.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _running(worker):
            time.sleep(0.05)
        statuses = set()
        for i in range(20):  # the first request may meet the dead worker (503); then a new one serves
            body, _ = genai_request(10 + i, 10)
            statuses.add(post_otlp(server.http_url, body).status_code)
            if 200 in statuses:
                break
            time.sleep(0.1)
        assert statuses <= {200, 503} and 200 in statuses
        assert len(_workers(server)) == 1
    finally:
        assert server.stop() == 0


def test_workers_price_with_the_config_file_overrides(tmp_path, servers):
    data = tmp_path / "data"
    data.mkdir()
    (data / "callscope.toml").write_text(
        '[[prices]]\nprovider = "openai"\nmodel = "gpt-4o-mini"\ninput_mtok = 3.0\noutput_mtok = 12.0\n'
    )
    server = ServerProcess(data, env={"CALLSCOPE_INGEST_WORKERS": "2"})
    servers.append(server.start())
    body, _ = genai_request(7, 3)  # gpt-4o-mini from openai; input 100+i tokens, output 20
    assert post_otlp(server.http_url, body).status_code == 200
    assert server.stop() == 0
    rows = sorted(export_rows(data), key=lambda r: r["input_tokens"])
    assert [r["pricing"] for r in rows] == ["override"] * 3
    for i, row in enumerate(rows):
        expected = (100 + i) * 3.0 / 1e6 + 20 * 12.0 / 1e6
        assert row["cost_usd"] == pytest.approx(expected, rel=1e-12)
