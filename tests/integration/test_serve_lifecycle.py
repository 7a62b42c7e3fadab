"""`callscope serve` starting where it cannot: a clear message (no traceback), exit code 2, and what it had
started taken down again on the same path as a clean stop (the store released for the next process). Starting where
it can: what a first request would otherwise wait for is done at start."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest

from bench.stack import free_port
from core.store import connect
from tests.helpers import ROOT, ServerProcess


@pytest.mark.parametrize("taken", ["http", "grpc"])
def test_a_taken_port_is_a_clear_error_that_leaves_nothing_behind(tmp_path, taken):
    http_port, grpc_port = free_port(), free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", http_port if taken == "http" else grpc_port))
        blocker.listen()
        cmd = [sys.executable, "-m", "callscope.cli", "serve", "--data-dir", str(tmp_path)]
        cmd += ["--otlp-http-port", str(http_port), "--otlp-grpc-port", str(grpc_port), "--ingest-workers", "1"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 2, err
    wanted = "OTLP/HTTP" if taken == "http" else "OTLP/gRPC"
    assert f"cannot listen for {wanted}" in err
    assert "Traceback" not in err
    connect(tmp_path / "callscope.duckdb").close()


def test_the_store_size_is_measured_at_start_not_at_the_first_request(tmp_path):
    # /metrics answers the last measurement and measures in the background when it has none: without the start's
    # warm-up, the first /metrics after a start has no size.
    server = ServerProcess(tmp_path).start()
    try:
        time.sleep(1)  # an empty store measures in milliseconds
        first = httpx.get(server.http_url + "/metrics", timeout=5).text
    finally:
        server.stop()
    assert "callscope_store_file_bytes " in first
    assert 'callscope_store_table_rows{table="calls"} 0' in first
