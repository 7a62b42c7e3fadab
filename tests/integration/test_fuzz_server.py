"""The short fuzz run: 2,000 fuzzed OTLP/HTTP bodies and 300 OTLP/gRPC ones against a real `callscope serve`.

The same cases and judging as bench/fuzz.py (the long run: 100,000 + 10,000), from bench/fuzzing: every answer
is one the OTLP spec allows for that body with its reason, nothing fails inside the server (503 "could not
commit" is how the receivers answer an exception), the server neither crashes nor restarts a worker, its
memory stays bounded, and every good span of an acknowledged partial batch is in the store afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.fuzzing.cases import Seeds
from bench.fuzzing.driver import format_report, log_errors, run_fuzz, stored_calls
from tests.helpers import ServerProcess

HTTP_BODIES = 2_000
GRPC_BODIES = 300
# A fixed seed: CI sends the same bodies every time (the in-process hypothesis test explores new ones).
SEED = int(os.environ.get("CALLSCOPE_FUZZ_SEED", "20261202"))
RSS_LIMIT_MB = 1024  # the server process alone; it idles at ~230 MB and peaked at ~330 MB in the long run


def test_fuzzed_bodies_get_otlp_answers_and_good_spans_are_stored(tmp_path: Path):
    server = ServerProcess(tmp_path / "data", env={"CALLSCOPE_CAPTURE_CONTENT": "true"}).start()
    assert server.proc is not None
    report = run_fuzz(
        http_url=server.http_url,
        grpc_target=server.grpc_target,
        server_pid=server.proc.pid,
        seeds=Seeds.load(),
        http_count=HTTP_BODIES,
        grpc_count=GRPC_BODIES,
        seed=SEED,
        failures_dir=tmp_path / "failures",
        server_alive=lambda: server.proc is not None and server.proc.poll() is None,
    )
    summary = format_report(report)
    assert not report.crashed, summary
    assert server.metric("callscope_worker_restarts_total") == 0, summary
    assert server.stop() == 0
    stored = stored_calls(server.data_dir / "callscope.duckdb", report.good_expected)
    print(f"seed {SEED}\n{format_report(report, len(stored))}")

    assert (report.http_sent, report.grpc_sent) == (HTTP_BODIES, GRPC_BODIES), summary
    assert not report.fuzzer_errors, summary
    assert not report.violations, summary
    assert report.server_errors == report.internal_errors == report.transport_errors == 0, summary
    assert log_errors(server.log()) == []
    # The run reached both sides of every transport: bodies decoded and stored, bodies refused.
    for answer in ("http 200", "http 400", "http 415", "grpc OK", "grpc INVALID_ARGUMENT"):
        assert report.statuses[answer] > 0, (answer, summary)
    assert report.peak_rss_mb < RSS_LIMIT_MB, summary
    assert report.partial_batches > 50 and len(report.good_expected) > 100, summary
    assert report.good_unacked == 0, summary
    assert stored == report.good_expected
