"""`callscope up`: the server in this process plus child processes (the dashboard; the demo sender with --demo),
started when the server is ready and stopped before it.

Children run in their own session, so Ctrl-C reaches only this process, which stops them (SIGTERM) and then the
server (in-flight requests finish, the queue is committed, exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field

from callscope import __version__
from callscope.dashboard_launch import dashboard_url
from callscope.server import serve
from core.process import die_with_parent
from core.settings import Settings
from core.store import connect

log = logging.getLogger("callscope.up")


@dataclass(frozen=True)
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def base_url(settings: Settings) -> str:
    return f"http://{settings.host}:{settings.otlp_http_port}"


def demo_child(settings: Settings, *, load_dataset: bool) -> Child:
    argv = [sys.executable, "-m", "callscope.cli", "demo", "send", "--endpoint", base_url(settings), "--live"]
    # The trickle keeps the shipped data's calls per hour at each hour of day, loaded now or not.
    argv += ["--dataset"] if load_dataset else ["--like-dataset"]
    return Child("demo", argv)


def dashboard_child(settings: Settings) -> Child:
    """`callscope dashboard` with this process's settings (the read key travels in the environment)."""
    argv = [sys.executable, "-m", "callscope.cli", "dashboard", "--data-dir", str(settings.data_dir)]
    argv += ["--host", settings.host, "--otlp-http-port", str(settings.otlp_http_port)]
    argv += ["--dashboard-host", settings.dashboard_host, "--dashboard-port", str(settings.dashboard_port)]
    if settings.api_url:
        argv += ["--api-url", settings.api_url]
    if settings.config_file:
        argv += ["--config", str(settings.config_file)]
    return Child("dashboard", argv)


def optional_children(settings: Settings, *, demo: bool, store_empty: bool) -> list[Child]:
    children = [demo_child(settings, load_dataset=store_empty)] if demo else []
    children.append(dashboard_child(settings))
    return children


def store_is_empty(settings: Settings) -> bool:
    """Whether the store holds no call yet (checked before the server takes the file)."""
    db = connect(settings.db_path)
    try:
        return db.execute("SELECT count(*) FROM calls").fetchone()[0] == 0
    finally:
        db.close()


def banner(settings: Settings, children: list[Child]) -> str:
    base = base_url(settings)
    lines = [
        f"callscope {__version__} is up with the store in {settings.data_dir}",
        f"  dashboard  {dashboard_url(settings)}",
        f"  OTLP/HTTP  {base}   (gRPC on {settings.host}:{settings.otlp_grpc_port})",
        f"  health     {base}/healthz   metrics {base}/metrics",
    ]
    lines += [f"  {c.name:<10} started" for c in children]
    lines += [
        "",
        "Point your application at it:",
        f"  export OTEL_EXPORTER_OTLP_ENDPOINT={base}",
        "  export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
        "  export OTEL_SERVICE_NAME=my-app   # recorded as the call's service",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def _start(child: Child) -> subprocess.Popen:
    log.info("starting %s: %s", child.name, " ".join(child.argv[1:]))
    return subprocess.Popen(
        child.argv, env={**os.environ, **child.env}, start_new_session=True, preexec_fn=die_with_parent
    )


def _stop(procs: list[tuple[Child, subprocess.Popen]], timeout: float = 10.0) -> None:
    for _, proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for child, proc in procs:
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        log.info("%s stopped (exit %s)", child.name, code)


async def run_up(settings: Settings, *, demo: bool) -> None:
    """Serve until SIGINT/SIGTERM, with the optional children running beside the server."""
    store_empty = store_is_empty(settings) if demo else False
    ready, stop = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(serve(settings, ready=ready, stop=stop))
    ready_wait = asyncio.create_task(ready.wait())
    await asyncio.wait({server, ready_wait}, return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        ready_wait.cancel()
        server.result()  # raises the StartupError
        return
    children = optional_children(settings, demo=demo, store_empty=store_empty)
    if demo and not store_empty:
        log.info("the store already holds calls: not loading the demo dataset, only the live trickle")
    procs: list[tuple[Child, subprocess.Popen]] = []
    try:
        procs = [(c, _start(c)) for c in children]
        print(banner(settings, children), flush=True)
        await asyncio.wait({server, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await asyncio.to_thread(_stop, procs)
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await server
