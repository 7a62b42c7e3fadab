"""`callscope serve` starting where it cannot: a clear message (no traceback), exit code 2, and what it had
started taken down again on the same path as a clean stop (the store released for the next process)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from bench.stack import free_port
from core.store import connect
from tests.helpers import ROOT


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
