"""`callscope serve`: one process that owns the DuckDB file and runs the OTLP receivers and the HTTP API.

Shutdown on SIGTERM/SIGINT: stop accepting connections, let in-flight requests finish (their rows are
committed by the writer), commit what is queued, checkpoint, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
from dataclasses import dataclass

import grpc
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

from alerts.notify_api import notify_router
from alerts.notify_config import ConfigError, NotifyConfig
from alerts.notify_service import NotifyService, load_config
from analytics.api import ReadApi, create_app
from analytics.jobs import Jobs
from callscope import __version__
from callscope.settings import Settings
from callscope.store import connect
from collector.grpc_receiver import OtlpGrpcReceiver
from collector.http_receiver import OtlpHttpReceiver
from collector.ingest import Ingestor
from collector.normalize import ContentOptions, SpanNormalizer
from collector.prepare import Preparer
from collector.pricing import Pricer
from collector.selfmetrics import CollectorStats
from collector.workers import WorkerConfig, WorkerPool
from collector.writer import Writer

log = logging.getLogger("callscope.server")


class StartupError(RuntimeError):
    """The server cannot start with these settings; the message says why and what to do."""


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except OSError:
            return False


def check_exposure(settings: Settings) -> None:
    if is_loopback(settings.host) or settings.allow_open:
        return
    if not settings.api_keys:
        raise StartupError(
            f"refusing to listen on {settings.host} without API keys: anyone who can reach it could write "
            "to your store. Set CALLSCOPE_API_KEYS (or api_keys in callscope.toml), or pass --allow-open."
        )
    if not settings.read_keys:
        raise StartupError(
            f"refusing to listen on {settings.host} without read keys: anyone who can reach it could read "
            "every call. Set CALLSCOPE_READ_KEYS (or read_keys in callscope.toml), or pass --allow-open."
        )


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the composed server handles signals once, for all parts."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


@dataclass
class Components:
    stats: CollectorStats
    writer: Writer
    ingestor: Ingestor
    app: Starlette
    notify: NotifyService


def worker_pool(settings: Settings, stats: CollectorStats | None = None) -> WorkerPool | None:
    """The ingest worker processes (not started), or None when the server prepares requests itself."""
    if settings.ingest_workers <= 0:
        return None
    config = WorkerConfig(
        price_overrides=settings.price_overrides,
        capture_content=settings.capture_content,
        content_max_chars=settings.content_max_chars,
        max_body_bytes=settings.max_body_bytes,
        log_level=settings.log_level,
    )
    return WorkerPool(settings.ingest_workers, config, stats)


def build(
    settings: Settings, db, pool: WorkerPool | None = None, notify_config: NotifyConfig | None = None
) -> Components:
    stats = pool.stats if pool is not None and pool.stats is not None else CollectorStats()
    writer = Writer(
        db,
        stats,
        queue_max_rows=settings.queue_max_spans,
        batch_max_rows=settings.batch_max_spans,
        batch_max_wait_s=settings.batch_max_wait_ms / 1000,
        retry_after_s=settings.retry_after_seconds,
    )
    content = ContentOptions(capture=settings.capture_content, max_chars=settings.content_max_chars)
    if pool is None:
        preparer = Preparer(SpanNormalizer(Pricer(settings.price_overrides), content), content, settings.max_body_bytes)
        ingestor = Ingestor(writer, stats, preparer=preparer)
    else:
        ingestor = Ingestor(writer, stats, pool=pool)
    receiver = OtlpHttpReceiver(
        ingestor,
        api_keys=dict(settings.api_keys),
        max_body_bytes=settings.max_body_bytes,
        max_inflight=settings.max_inflight_requests,
        retry_after=settings.retry_after_seconds,
    )

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__, "queue_rows": writer.pending_rows})

    async def metrics(_: Request) -> PlainTextResponse:
        return PlainTextResponse(stats.render(), media_type="text/plain; version=0.0.4")

    pricer = Pricer(settings.price_overrides)
    api = create_app(ReadApi(db, settings.read_keys, settings.api_max_queries, pricer.cost_parts), __version__)
    notify = NotifyService(db, settings, notify_config)  # alerts' dispatcher, delivery, digests and their routes
    api.include_router(notify_router(notify))
    routes = [
        *receiver.routes(),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Mount("/api/v1", app=api),
    ]
    return Components(stats, writer, ingestor, Starlette(routes=routes), notify)


async def serve(settings: Settings, *, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
    check_exposure(settings)
    try:
        notify_config = load_config(settings)
    except ConfigError as exc:
        raise StartupError(f"invalid notification config ({settings.config_file or 'no config file'}): {exc}") from None
    pool = worker_pool(settings, CollectorStats())
    if pool is not None:
        pool.start()  # the workers import and warm up while the store opens
    try:
        db = connect(settings.db_path, checkpoint_mb=settings.checkpoint_mb, threads=settings.duckdb_threads or None)
    except BaseException:
        if pool is not None:
            pool.close()
        raise
    parts = build(settings, db, pool, notify_config)
    parts.writer.start()
    if pool is not None:
        try:
            await asyncio.to_thread(pool.wait_ready)
        except BaseException:
            pool.close()
            parts.writer.close()
            db.close()
            raise
    writer = parts.writer

    def writer_horizon() -> int | None:
        with writer.stamp_lock:
            return writer.open_since_us

    jobs = Jobs(
        db,
        rollup_interval_s=settings.rollup_interval_seconds,
        rollup_lag_s=settings.rollup_lag_seconds,
        writer_horizon=writer_horizon,
    )
    jobs.start()
    parts.notify.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)

    grpc_server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ]
    )
    grpc_server.add_generic_rpc_handlers(
        OtlpGrpcReceiver(
            parts.ingestor, api_keys=dict(settings.api_keys), max_body_bytes=settings.max_body_bytes
        ).handlers()
    )
    grpc_target = f"{settings.host}:{settings.otlp_grpc_port}"
    if grpc_server.add_insecure_port(grpc_target) == 0:
        parts.ingestor.close()
        parts.writer.close()
        db.close()
        raise StartupError(f"cannot listen for OTLP/gRPC on {grpc_target}")
    await grpc_server.start()

    config = uvicorn.Config(
        parts.app,
        host=settings.host,
        port=settings.otlp_http_port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=30,
        limit_concurrency=max(256, settings.max_inflight_requests * 4),
    )
    http_server = _Uvicorn(config)
    http_task = asyncio.create_task(http_server.serve())
    while not http_server.started and not http_task.done():
        await asyncio.sleep(0.02)
    if http_task.done():
        await grpc_server.stop(None)
        jobs.stop()
        parts.notify.stop()
        parts.ingestor.close()
        parts.writer.close()
        db.close()
        raise StartupError(f"cannot listen for OTLP/HTTP on {settings.host}:{settings.otlp_http_port}")

    log.info(
        "callscope %s: OTLP/HTTP on http://%s:%d, OTLP/gRPC on %s, store %s, %d ingest worker process(es)",
        __version__,
        settings.host,
        settings.otlp_http_port,
        grpc_target,
        settings.db_path,
        pool.size if pool is not None else 0,
    )
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("shutting down: finishing in-flight requests and committing the queue")
        http_server.should_exit = True
        await asyncio.gather(grpc_server.stop(grace=10), http_task, return_exceptions=True)
        await asyncio.to_thread(parts.ingestor.close)
        await asyncio.to_thread(parts.writer.close)
        await asyncio.to_thread(jobs.stop)
        await asyncio.to_thread(parts.notify.stop)
        db.execute("CHECKPOINT")
        db.close()
        log.info("stopped cleanly")
