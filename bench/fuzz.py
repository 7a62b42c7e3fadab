"""Fuzz benchmark: a real `callscope serve` under 100,000 fuzzed OTLP/HTTP bodies and 10,000 OTLP/gRPC ones.

Method
------
1. Start `python -m callscope.cli serve` on free loopback ports with a fresh data dir, content capture on (so
   the content paths are fuzzed too) and the default ingest workers; wait for GET /healthz.
2. Build every case from real bodies (the recorded protobuf captures and the OTLP/JSON convention fixtures
   under tests/fixtures) with bench/fuzzing: byte mutations (truncation, bit flips, splices, lying lengths),
   wire-level ones (duplicated, reordered, re-typed fields, unknown fields, group markers, nesting past the
   recursion limit, invalid UTF-8), edge values in decoded messages (ids of every wrong length, NaN/inf,
   64-bit extremes, huge strings, bad enums and timestamps), OTLP/JSON with wrong types at every level and
   broken text, wrong compression and content types, oversized bodies and gzip bombs, and partial batches:
   storable model calls mixed with spans that must be rejected. Case i of a run is rebuilt from (seed, i).
3. Send them from 4 HTTP client threads and 2 gRPC client threads at once (one connection each), judging
   every answer (bench/fuzzing/driver.py): 200/400/413/415/429/503 as the case allows with a
   google.rpc.Status reason (gRPC: OK, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE with details), and
   partial success naming exactly the bad spans. 503 "could not commit" is the receivers' answer to an
   unexpected exception: counted as an internal error. A partial batch answered 429/503 is re-sent.
4. Sample the server's RSS (and its workers') every 0.2 s. Stop it with SIGTERM (it must exit 0), read the
   store: every good span of every acknowledged partial batch must be a row of `calls`.
5. Print bodies/s, the answer histogram, 500s, internal errors, crashes, peak RSS and spans kept/expected;
   exit 1 on any failure. Failing bodies are saved under --failures.

Run: `.venv/bin/python bench/fuzz.py [--http 100000] [--grpc 10000] [--seed 1] [--failures DIR] [--keep]`;
`--show http:1239` rebuilds case 1239 of that seed (no server) and saves its body.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fuzzing.cases import Seeds, case_rng, make_case  # noqa: E402
from bench.fuzzing.driver import Report, format_report, log_errors, run_fuzz, stored_calls  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, timeout: float = 60.0) -> tuple[subprocess.Popen[bytes], int, int]:
    http_port, grpc_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "callscope.cli", "serve", "--data-dir", str(data_dir)]
    cmd += ["--otlp-http-port", str(http_port), "--otlp-grpc-port", str(grpc_port)]
    env = {**os.environ, "CALLSCOPE_CAPTURE_CONTENT": "true", "CALLSCOPE_LOG_LEVEL": "info"}
    with (data_dir / "server.log").open("ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: see {data_dir / 'server.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=1).status_code == 200:
                return proc, http_port, grpc_port
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not answer /healthz within {timeout:g}s")


def metric(http_port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.split("{")[0].split(" ")[0] == name)


def progress(report: Report) -> None:
    rate = report.sent / max(report.seconds, 1e-9)
    top = ", ".join(f"{k} {v}" for k, v in report.statuses.most_common(6))
    print(
        f"[{report.seconds:6.0f}s] {report.http_sent} HTTP + {report.grpc_sent} gRPC ({rate:.0f}/s)"
        f" violations {len(report.violations)}, RSS peak {report.peak_rss_mb:.0f} MB | {top}",
        flush=True,
    )


def show_case(seed: int, spec: str) -> int:
    """Rebuild case TRANSPORT:INDEX of a run seeded `seed` without a server: print it, save its body."""
    transport, _, index = spec.partition(":")
    case = make_case(Seeds.load(), case_rng(seed, transport, int(index)), transport, int(index))
    out = Path(f"fuzz-{seed}-{transport}-{index}.bin")
    out.write_bytes(case.body)
    print(
        f"{transport} #{index} [{case.generator}] POST {case.path} content-type={case.content_type!r}"
        f" content-encoding={case.content_encoding!r} grpc-gzip={case.grpc_gzip}; right answers"
        f" {sorted(case.expected)}; partial batch: {case.rejected} to reject, {len(case.good_ids)} good;"
        f" {len(case.body)} bytes saved to {out}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", type=int, default=100_000, help="fuzzed HTTP bodies (default 100000)")
    parser.add_argument("--grpc", type=int, default=10_000, help="fuzzed gRPC bodies (default 10000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--http-clients", type=int, default=4)
    parser.add_argument("--grpc-clients", type=int, default=2)
    parser.add_argument("--failures", type=Path, default=None, help="save failing bodies here")
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    parser.add_argument(
        "--show", metavar="TRANSPORT:INDEX", help="rebuild one case of --seed (e.g. http:1239), save its body, exit"
    )
    args = parser.parse_args(argv)
    if args.show:
        return show_case(args.seed, args.show)

    data_dir = Path(tempfile.mkdtemp(prefix="callscope-fuzz-"))
    seeds = Seeds.load()
    proc, http_port, grpc_port = start_server(data_dir)
    print(f"server pid {proc.pid}, data dir {data_dir}; {args.http} HTTP + {args.grpc} gRPC bodies, seed {args.seed}")
    try:
        report = run_fuzz(
            http_url=f"http://127.0.0.1:{http_port}",
            grpc_target=f"127.0.0.1:{grpc_port}",
            server_pid=proc.pid,
            seeds=seeds,
            http_count=args.http,
            grpc_count=args.grpc,
            seed=args.seed,
            http_clients=args.http_clients,
            grpc_clients=args.grpc_clients,
            failures_dir=args.failures,
            progress=progress,
            progress_every=10.0,
            server_alive=lambda: proc.poll() is None,
        )
        restarts = metric(http_port, "callscope_worker_restarts_total") if proc.poll() is None else float("nan")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            exit_code = proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            exit_code = proc.wait()
    stored = stored_calls(data_dir / "callscope.duckdb", report.good_expected)
    errors = log_errors((data_dir / "server.log").read_text(errors="replace"))
    print(format_report(report, len(stored)))
    print(f"worker restarts: {restarts:g}; server exit code: {exit_code}; ERROR lines in the server log: {len(errors)}")
    for line in errors[:10]:
        print("  " + line[:300])
    failed = bool(
        report.violations
        or report.fuzzer_errors
        or report.crashed
        or report.server_errors
        or restarts
        or exit_code != 0
        or errors
        or len(stored) != len(report.good_expected)
    )
    print("FAIL" if failed else "PASS")
    if args.keep or failed:
        print(f"data dir kept: {data_dir}")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
