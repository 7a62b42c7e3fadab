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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import grpc
import uvicorn
from genai_prices import data_snapshot
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

from alerts.api import router as alerts_router
from alerts.api import write_router as alerts_write_router
from alerts.notify_api import notify_routers
from alerts.notify_config import ConfigError, NotifyConfig
from alerts.notify_service import NotifyService, load_config
from alerts.service import Alerting
from alerts.store import DuckStateStore
from analytics.access import Access
from analytics.anomalies.job import AnomalyConfig
from analytics.api import create_app
from analytics.api_context import ReadApi
from analytics.budgets import parse_budget, sync_config_budgets
from analytics.drift.config import DriftConfig
from analytics.errors import QueryError
from analytics.jobs import Jobs
from analytics.oidc import IssuerKeys
from analytics.retention import Policy
from callscope import __version__
from callscope.lake_node import LakeNode
from collector import model_names
from collector.aggregates import AggregateTracker
from collector.grpc_receiver import OtlpGrpcReceiver
from collector.http_receiver import OtlpHttpReceiver
from collector.ingest import Ingestor
from collector.model_names import ModelNames
from collector.normalize import ContentOptions, SpanNormalizer
from collector.prepare import Preparer
from collector.price_book import PriceBookService
from collector.pricing import Pricer
from collector.selfmetrics import CollectorStats
from collector.workers import WorkerConfig, WorkerPool
from collector.writer import Writer
from core.lake import LakeError
from core.pricebook import PriceBookError
from core.settings import Settings
from core.storage import render_metrics as render_storage
from core.store import open_store, serialise_writes

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


def check_exposure(settings: Settings, access: Access | None = None) -> None:
    """Refuse a non-loopback bind that would let anyone write or read: ingest needs keys, and the API needs keys,
    users or OIDC (local mode, open to whoever connects, is for 127.0.0.1 only). `access`: known once the store
    is open (its users and keys count)."""
    if is_loopback(settings.host) or settings.allow_open:
        return
    if not settings.api_keys:
        raise StartupError(
            f"refusing to listen on {settings.host} without API keys: anyone who can reach it could write "
            "to your store. Set CALLSCOPE_API_KEYS (or api_keys in callscope.toml), or pass --allow-open."
        )
    if access is not None and access.local:
        raise StartupError(
            f"refusing to listen on {settings.host} without read keys or users: anyone who can reach it could read "
            "every call. Add users (`callscope users add`), set CALLSCOPE_READ_KEYS (or read_keys in "
            "callscope.toml) or OIDC sign-in, or pass --allow-open."
        )


def access_for(settings: Settings, db) -> Access:
    """Who may use the API: the configured keys, the store's users and keys, OIDC ID tokens of the issuer."""
    oidc = None
    if settings.oidc_issuer and settings.oidc_client_id:
        oidc = IssuerKeys(settings.oidc_issuer, settings.oidc_client_id)
    return Access(
        db,
        read_keys=dict(settings.read_keys),
        write_keys=dict(settings.write_keys),
        session_ttl=timedelta(hours=settings.session_hours),
        oidc=oidc,
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
    alerting: Alerting
    notify: NotifyService
    access: Access
    warm_up: Callable[[], None]  # what a first visitor would otherwise wait for, done at start (see build)


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
    settings: Settings,
    db,
    pool: WorkerPool | None = None,
    notify_config: NotifyConfig | None = None,
    node: LakeNode | None = None,
) -> Components:
    """The server's parts on an open store; `node`: this server is a node of a lake (store = lake)."""
    stats = pool.stats if pool is not None and pool.stats is not None else CollectorStats()
    writer = Writer(
        db,
        stats,
        queue_max_rows=settings.queue_max_rows,
        batch_max_rows=settings.batch_max_rows,
        batch_max_wait_s=settings.batch_max_wait_ms / 1000,
        retry_after_s=settings.retry_after_seconds,
        aggregates=AggregateTracker(),
        commit_lock=node.commit_lock if node is not None else None,
    )
    content = ContentOptions(capture=settings.capture_content, max_chars=settings.content_max_chars)
    prices = PriceBookService(db, settings.price_overrides)
    try:
        prices.load()  # the config file's [[prices]] into the stored price book
    except PriceBookError as exc:
        raise StartupError(f"config file [[prices]]: {exc}") from None
    if pool is None:
        ingest_pricer = Pricer(settings.price_overrides)
        prices.attach(ingest_pricer)
        preparer = Preparer(SpanNormalizer(ingest_pricer, content), content, settings.max_body_bytes)
        ingestor = Ingestor(writer, stats, preparer=preparer)
    else:
        prices.attach(pool)
        ingestor = Ingestor(writer, stats, pool=pool)
    receiver = OtlpHttpReceiver(
        ingestor.export_raw,
        ingestor.has_room,
        stats,
        api_keys=dict(settings.api_keys),
        max_body_bytes=settings.max_body_bytes,
        max_inflight=settings.max_inflight_requests,
        retry_after=settings.retry_after_seconds,
    )

    async def healthz(_: Request) -> JSONResponse:
        body = {"status": "ok", "version": __version__, "queue_rows": writer.pending_rows}
        if node is not None:
            body.update(await asyncio.to_thread(node.health))
        return JSONResponse(body)

    async def metrics(_: Request) -> PlainTextResponse:
        size = read_api.storage_latest()  # refreshed in the background at most every 5 minutes
        body = stats.render() + (render_storage(size) if size is not None else "")
        if node is not None:
            body += await asyncio.to_thread(node.render_metrics)
        return PlainTextResponse(body, media_type="text/plain; version=0.0.4")

    pricer = Pricer(settings.price_overrides)
    prices.attach(pricer)
    drift = DriftConfig.from_settings(settings)  # validated here: a bad drift setting stops the start
    policy = Policy.from_settings(settings)  # validated here: a bad retention setting stops the start
    read_api = ReadApi(
        db,
        settings.api_max_queries,
        pricer.cost_parts,
        drift,
        retention=policy,
        retention_batch_rows=settings.retention_batch_rows,
    )
    read_api.prices = prices
    read_api.prices_max_age_days = settings.prices_max_age_days
    try:
        sync_config_budgets(db, [parse_budget(b, source="config") for b in settings.budgets_config])
    except QueryError as exc:
        raise StartupError(f"config file [[budgets]]: {exc}") from None
    # On a lake every node writes rules, silences and one-off digests, and the lease holder's jobs write the alert
    # state and the outbox: each under the commit lock, the jobs' only while this node holds the lease.
    sharing = node.sharing() if node is not None else None
    states = DuckStateStore(db) if sharing is None else DuckStateStore(db, sharing.lock, sharing.job_lock)
    alerting = Alerting(states, read_api.cursor, settings.alerts_path, settings.dashboard_link, shared=node is not None)
    # alerts' dispatcher, delivery, digests and their routes
    notify = NotifyService(db, settings, notify_config, sharing=sharing)
    access = access_for(settings, db)
    notify_read, notify_write = notify_routers(notify)
    api = create_app(
        read_api, __version__, access, routers=[alerts_router, notify_read, alerts_write_router, notify_write]
    )
    api.state.alerting = alerting
    routes = [
        *receiver.routes(),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Mount("/api/v1", app=api),
    ]

    def warm_up() -> None:
        # Done at start rather than in a visitor's first requests (measured on the dashboard's first visit after a
        # start, 10M calls, 2 cores): the read API's OpenAPI document, which every route's parameter check reads
        # (analytics/api_params.py; ~0.2 s to build), and the store's size for /meta and /metrics (measured in the
        # background; ~0.3 s of CPU that otherwise competed with the visit's queries).
        api.openapi()
        read_api.storage_latest()

    return Components(stats, writer, ingestor, Starlette(routes=routes), alerting, notify, access, warm_up)


async def serve(settings: Settings, *, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or SIGTERM/SIGINT). Every part is registered on one exit stack as it starts, so a
    failed start and a clean stop take the same way down, in reverse: receivers stop accepting and finish
    in-flight requests, jobs stop, workers drain, the writer commits its queue, the store checkpoints."""
    check_exposure(settings)
    try:
        notify_config = load_config(settings)
    except ConfigError as exc:
        raise StartupError(f"invalid notification config ({settings.config_file or 'no config file'}): {exc}") from None
    stop = _stop_on_signals(stop)
    async with contextlib.AsyncExitStack() as down:
        pool = worker_pool(settings, CollectorStats())
        if pool is not None:
            pool.start()  # the workers import and warm up while the store opens
            down.callback(pool.close)
        lake_mode = settings.store == "lake"
        try:
            db = await asyncio.to_thread(open_store, settings)
        except LakeError as exc:
            raise StartupError(str(exc)) from None
        down.callback(_close_store, db, checkpoint=not lake_mode)
        node = LakeNode(settings, db) if lake_mode else None
        if node is not None:
            down.callback(node.stop)
            serialise_writes(node.commit_lock)  # every store transaction without a lock of its own
            down.callback(serialise_writes, None)
        filled = await asyncio.to_thread(model_names.backfill, db, ModelNames(data_snapshot.get_snapshot()))
        if filled:
            log.info("named the models of stored calls (%d distinct model names)", filled)
        parts = build(settings, db, pool, notify_config, node)
        check_exposure(settings, parts.access)
        parts.writer.start()
        down.push_async_callback(asyncio.to_thread, parts.writer.close)
        down.push_async_callback(asyncio.to_thread, parts.ingestor.close)
        if pool is not None:
            await asyncio.to_thread(pool.wait_ready)
        if node is None:
            for stop_job in await asyncio.to_thread(_start_once_per_store_jobs, settings, db, parts):
                down.push_async_callback(asyncio.to_thread, stop_job)
        else:  # only on the node holding the job lease; `node.stop` (above) stops them
            await asyncio.to_thread(parts.alerting.load)  # every node lists the rules (file and API) in its API
            node.start_lease(lambda: _start_once_per_store_jobs(settings, db, parts))
        _reload_rules_on_sighup(parts.alerting)
        await asyncio.to_thread(parts.warm_up)
        grpc_target = await _start_grpc(settings, parts, down)
        await _start_http(settings, parts.app, down)
        log.info(
            "callscope %s: OTLP/HTTP on http://%s:%d, OTLP/gRPC on %s, store %s, %d ingest worker process(es)",
            __version__,
            settings.host,
            settings.otlp_http_port,
            grpc_target,
            f"lake {settings.lake_data_path} (node {node.name})" if node is not None else settings.db_path,
            pool.size if pool is not None else 0,
        )
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutting down: finishing in-flight requests and committing the queue")
    log.info("stopped cleanly")


def _close_store(db, *, checkpoint: bool = True) -> None:
    """Close the store; the embedded file checkpoints first (on a lake CHECKPOINT would be a maintenance run,
    which is the lease holder's job)."""
    if checkpoint:
        with contextlib.suppress(Exception):  # a store that failed mid-start may refuse the checkpoint; close anyway
            db.execute("CHECKPOINT")
    db.close()


def _start_once_per_store_jobs(settings: Settings, db, parts: Components) -> list[Callable[[], None]]:
    """Start the jobs that run once per store (rollups and detection, alert evaluation, notification); returns how
    to stop each, in start order. Embedded: at start. Lake: when this node takes the job lease."""
    jobs = _start_jobs(settings, db, parts.writer)
    stops: list[Callable[[], None]] = [jobs.stop]
    parts.alerting.load()
    parts.alerting.start()
    stops.append(parts.alerting.stop)
    parts.notify.start()
    stops.append(parts.notify.stop)
    return stops


def _start_jobs(settings: Settings, db, writer: Writer) -> Jobs:
    def writer_horizon() -> int | None:
        with writer.stamp_lock:
            return writer.open_since_us

    jobs = Jobs(
        db,
        rollup_interval_s=settings.rollup_interval_seconds,
        rollup_lag_s=settings.rollup_lag_seconds,
        writer_horizon=writer_horizon,
        drift=DriftConfig.from_settings(settings),
        drift_interval_s=settings.drift_interval_seconds,
        anomalies=AnomalyConfig.from_settings(settings),
        anomaly_interval_s=settings.anomaly_interval_seconds,
        retention_policy=Policy.from_settings(settings),
        retention_interval_s=settings.retention_interval_seconds,
        retention_batch_rows=settings.retention_batch_rows,
    )
    jobs.start()
    return jobs


async def _start_grpc(settings: Settings, parts: Components, down: contextlib.AsyncExitStack) -> str:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ]
    )
    server.add_generic_rpc_handlers(
        OtlpGrpcReceiver(
            parts.ingestor.export_raw,
            parts.stats,
            api_keys=dict(settings.api_keys),
            max_body_bytes=settings.max_body_bytes,
        ).handlers()
    )
    target = f"{settings.host}:{settings.otlp_grpc_port}"
    try:
        bound = server.add_insecure_port(target)
    except RuntimeError:  # grpcio >= 1.58 raises where older versions returned 0
        bound = 0
    if bound == 0:
        raise StartupError(f"cannot listen for OTLP/gRPC on {target} (is the port in use?)")
    await server.start()
    down.push_async_callback(server.stop, 10)
    return target


async def _start_http(settings: Settings, app: Starlette, down: contextlib.AsyncExitStack) -> None:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.otlp_http_port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=30,
        limit_concurrency=max(256, settings.max_inflight_requests * 4),
    )
    sock = _bind(settings.host, settings.otlp_http_port)  # uvicorn would sys.exit() on a taken port
    server = _Uvicorn(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))

    async def stop_http() -> None:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)

    down.push_async_callback(stop_http)
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if task.done():
        raise StartupError(f"cannot listen for OTLP/HTTP on {settings.host}:{settings.otlp_http_port}")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without, a response written in two parts (headers, then body) waited for the
    # client's delayed ACK of the first, and every small answer on a kept-alive connection took ~44 ms, not ~4.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen for OTLP/HTTP on {host}:{port}: {exc.strerror}") from exc
    return sock


def _reload_rules_on_sighup(alerting: Alerting) -> None:
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, alerting.request_reload)


def _stop_on_signals(stop: asyncio.Event | None) -> asyncio.Event:
    """The event that ends the server, set by SIGTERM/SIGINT too (also during start-up, which then unwinds)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    return stop
