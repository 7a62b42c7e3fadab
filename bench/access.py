"""What access control costs a request: a password sign-in (argon2id verification, the intended cost), and the
per-request check of a session token, a configured key and an OIDC ID token (signature against a cached JWKS),
against a real `callscope serve` over HTTP. Prints median and p95 latency of GET /api/v1/auth/me per credential
(the cheapest route, so the check is most of the time), and of /stats with and without a credential in local mode.

    .venv/bin/python bench/access.py [--requests N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import subprocess

import httpx

from bench.oidc_provider import Client, Provider
from bench.stack import ROOT, callscope_argv, free_port, wait_for_url
from core import users
from core.access import ALL, Principal, Role
from core.store import connect

PASSWORD = "bench-password-1"
READ_KEY = "bench-read-key-1"


class Server:
    """`callscope serve` on free ports over `data`, with `env`."""

    def __init__(self, data: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        log = (data.parent / "server.log").open("ab")
        cmd = callscope_argv("serve", data, self.port, free_port())
        full = {**os.environ, "CALLSCOPE_INGEST_WORKERS": "0", **env}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full, stdout=log, stderr=subprocess.STDOUT)
        wait_for_url(self.proc, f"http://127.0.0.1:{self.port}/healthz", time.monotonic() + 120, lambda: "")
        self.api = f"http://127.0.0.1:{self.port}/api/v1"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def seed(data: Path) -> None:
    data.mkdir(parents=True)
    db = connect(data / "callscope.duckdb")
    actor = Principal("bench", "cli", {ALL: Role.admin})
    users.add_user(db, actor, "ann", PASSWORD, {"A": Role.viewer})
    users.add_user(db, actor, "ann@example.com", None, {"A": Role.viewer})
    db.close()


def sign_in(api: str) -> str:
    answer = httpx.post(f"{api}/auth/login", json={"name": "ann", "password": PASSWORD}, timeout=30)
    answer.raise_for_status()
    return answer.json()["token"]


def timed(client: httpx.Client, path: str, token: str | None, n: int) -> tuple[float, float]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        answer = client.get(path, headers=headers)
        samples.append((time.perf_counter() - t0) * 1000)
        assert answer.status_code == 200, answer.text
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    client_reg = Client("bench", "bench-secret", ("http://127.0.0.1:9/cb",))
    with tempfile.TemporaryDirectory() as tmp, Provider({}, [client_reg]) as provider:
        data = Path(tmp) / "data"
        seed(data)
        env = {
            "CALLSCOPE_READ_KEYS": f"{READ_KEY}=A",
            "CALLSCOPE_OIDC_ISSUER": provider.issuer,
            "CALLSCOPE_OIDC_CLIENT_ID": "bench",
        }
        server = Server(data, env)
        try:
            api = server.api
            logins = []
            for _ in range(20):
                t0 = time.perf_counter()
                session = sign_in(api)
                logins.append((time.perf_counter() - t0) * 1000)
            print(f"password sign-in (argon2id verify + session): median {statistics.median(logins):.1f} ms")
            id_token = provider.issue_id_token("ann@example.com", "bench")
            with httpx.Client(base_url=api, timeout=30) as http:
                for name, token in (
                    ("session token", session),
                    ("configured read key", READ_KEY),
                    ("OIDC ID token", id_token),
                ):
                    timed(http, "/auth/me", token, 20)  # warm-up (the JWKS is fetched once)
                    p50, p95 = timed(http, "/auth/me", token, args.requests)
                    print(f"GET /auth/me with a {name}: median {p50:.2f} ms, p95 {p95:.2f} ms")
        finally:
            server.stop()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "data").mkdir()
        server = Server(Path(tmp) / "data", {})
        try:
            with httpx.Client(base_url=server.api, timeout=30) as http:
                timed(http, "/auth/me", None, 20)
                p50, p95 = timed(http, "/auth/me", None, args.requests)
                print(f"GET /auth/me in local mode (no credential): median {p50:.2f} ms, p95 {p95:.2f} ms")
        finally:
            server.stop()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
