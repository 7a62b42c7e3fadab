"""Worker processes that decode and normalise requests, so that work uses more than one core.

The server process keeps the sockets and the single DuckDB writer; a worker receives a request's raw body
(still compressed) and returns its rows as Arrow IPC (collector/prepare.py). Each worker talks to the server
over its own pipe, one request at a time; one dispatcher thread per worker feeds it from a shared queue, so
a free worker takes the next request.

Lifetime: workers are started with the "spawn" method (no inherited locks or DuckDB handles). A worker exits
when its pipe reaches end-of-file, which happens when the server closes it (shutdown) or dies (even by
SIGKILL: the kernel closes the server's end); on Linux it also asks the kernel for SIGKILL when the server
dies. Workers ignore SIGINT/SIGTERM sent to the whole process group so that a graceful stop can finish the
requests in flight. A worker that dies is replaced and its request answered with an error (503).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import pickle
import queue
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from collector.decode import Encoding, Signal
from collector.prepare import Prepared
from core.process import die_with_parent

log = logging.getLogger(__name__)

_READY = b"ready"
_BOOK = b"B"  # a message that is not a request: the price book changed (its entries pickled after this byte)


class WorkerError(RuntimeError):
    """A worker failed on a request (an unexpected exception, or the worker process died)."""


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs to build its Preparer; picklable."""

    price_overrides: tuple[Any, ...]
    capture_content: bool
    content_max_chars: int
    max_body_bytes: int
    log_level: str


def worker_main(conn: Connection, config: WorkerConfig, parent_pid: int) -> None:
    """Entry point of a worker process: serve requests from `conn` until end-of-file."""
    die_with_parent(signal.SIGKILL, parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s")
    from collector.normalize import ContentOptions, SpanNormalizer
    from collector.prepare import Preparer
    from collector.pricing import Pricer

    content = ContentOptions(capture=config.capture_content, max_chars=config.content_max_chars)
    pricer = Pricer(config.price_overrides)
    preparer = Preparer(SpanNormalizer(pricer, content), content, config.max_body_bytes)
    Prepared(calls=None).to_bytes()  # warm the Arrow IPC path before the first request
    conn.send_bytes(_READY)
    while True:
        try:
            header = conn.recv_bytes()
            body = b"" if header[:1] == _BOOK else conn.recv_bytes()
        except (EOFError, OSError):
            return  # the server closed the pipe or died
        if header[:1] == _BOOK:  # sent alone, before the next request: no body and no reply
            from core.pricebook import PriceBook

            generation, entries = pickle.loads(header[1:])
            pricer.set_book(PriceBook(entries, generation))
            continue
        try:
            signal_name, encoding, content_encoding, project, received_us = pickle.loads(header)
            prepared = preparer.prepare_raw(
                Signal(signal_name), Encoding(encoding), content_encoding, body, project, received_us
            )
            reply = b"\x00" + prepared.to_bytes()
        except Exception:
            reply = b"\x01" + traceback.format_exc().encode()
        try:
            conn.send_bytes(reply)
        except (EOFError, OSError):
            return


class _Worker:
    """One worker process and the dispatcher thread that feeds it."""

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.process: mp.process.BaseProcess | None = None
        self.conn: Connection | None = None
        self.thread = threading.Thread(target=self._run, name=f"callscope-worker-{index}", daemon=True)
        self.book_generation = -1  # the price book generation this worker process has (-1: its config's)

    def spawn(self) -> None:
        parent_conn, child_conn = self.pool.ctx.Pipe(duplex=True)
        process = self.pool.ctx.Process(
            target=worker_main,
            args=(child_conn, self.pool.config, os.getpid()),
            name=f"callscope-worker-{self.index}",
            daemon=True,
        )
        process.start()
        self.book_generation = -1  # a new process starts from its config: send it the current book
        child_conn.close()  # only the worker holds its end: the server's death is the worker's end-of-file
        self.process, self.conn = process, parent_conn

    def wait_ready(self, timeout: float) -> None:
        assert self.conn is not None
        if not self.conn.poll(timeout):
            raise WorkerError(f"worker {self.index} did not start within {timeout:g}s")
        try:
            if self.conn.recv_bytes() != _READY:
                raise WorkerError(f"worker {self.index} sent an unexpected greeting")
        except (EOFError, OSError) as exc:
            raise WorkerError(f"worker {self.index} exited during start-up (exit code {self._exitcode()})") from exc

    def _exitcode(self) -> int | None:
        if self.process is None:
            return None
        self.process.join(1)
        return self.process.exitcode

    def _run(self) -> None:
        jobs = self.pool.jobs
        while True:
            item = jobs.get()
            if item is None:
                break
            header, body, future, loop = item
            if future.cancelled():
                continue
            try:
                result: Prepared | Exception = self._prepare(header, body)
            except WorkerError as exc:
                result = exc
            except Exception as exc:  # never let the dispatcher die: its requests would wait forever
                log.exception("worker %d: dispatching a request failed", self.index)
                result = WorkerError(f"worker {self.index}: {exc!r}")
            loop.call_soon_threadsafe(_resolve, future, result)

    def _prepare(self, header: bytes, body: bytes) -> Prepared:
        reply = self._call(header, body)
        if reply[:1] == b"\x00":
            return Prepared.from_bytes(reply[1:])
        log.error("worker %d failed on a request:\n%s", self.index, reply[1:].decode(errors="replace"))
        raise WorkerError(f"worker {self.index} failed on the request")

    def _call(self, header: bytes, body: bytes) -> bytes:
        if self.conn is None:  # an earlier restart failed: try again
            self._restart()
            if self.conn is None:
                raise WorkerError(f"worker {self.index} is not running")
        try:
            book = self.pool.book
            if book is not None and book.generation != self.book_generation:
                self.conn.send_bytes(_BOOK + pickle.dumps((book.generation, book.entries)))
                self.book_generation = book.generation
            self.conn.send_bytes(header)
            self.conn.send_bytes(body)
            return self.conn.recv_bytes()
        except (EOFError, OSError) as exc:
            code = self._exitcode()
            log.error("worker %d died (exit code %s); starting a new one", self.index, code)
            self.pool.stats_inc("callscope_worker_restarts_total")
            self._restart()
            raise WorkerError(f"worker {self.index} died while preparing the request") from exc

    def _restart(self) -> None:
        self.stop()
        try:
            self.spawn()
            self.wait_ready(self.pool.start_timeout)
        except (WorkerError, OSError):
            log.exception("worker %d could not be restarted", self.index)
            self.stop()

    def stop(self) -> None:
        """Close the pipe (the worker exits at end-of-file), then make sure it is gone."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.process is not None:
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)
            self.process = None


def _resolve(future: asyncio.Future[Prepared], result: Prepared | Exception) -> None:
    if future.cancelled():
        return
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)


class WorkerPool:
    """`size` worker processes preparing requests; `prepare` is awaited from the event loop."""

    def __init__(self, size: int, config: WorkerConfig, stats: Any = None, start_timeout: float = 60.0) -> None:
        self.ctx = mp.get_context("spawn")
        self.config = config
        self.stats = stats
        self.start_timeout = start_timeout
        self.jobs: queue.SimpleQueue[tuple[bytes, bytes, asyncio.Future[Prepared], Any] | None] = queue.SimpleQueue()
        self._workers = [_Worker(self, i) for i in range(size)]
        self._closed = False
        self.book: Any = None  # the current price book (core.pricebook.PriceBook); set_book swaps it

    def set_book(self, book: Any) -> None:
        """Every worker gets `book` before the next request it prepares (one pickled message, once per change)."""
        self.book = book

    @property
    def size(self) -> int:
        return len(self._workers)

    def stats_inc(self, name: str) -> None:
        if self.stats is not None:
            self.stats.inc(name)

    def start(self) -> None:
        """Spawn every worker (they import and warm up in parallel); `wait_ready` waits for them."""
        for worker in self._workers:
            worker.spawn()

    def wait_ready(self) -> None:
        started = time.monotonic()
        for worker in self._workers:
            worker.wait_ready(max(0.1, self.start_timeout - (time.monotonic() - started)))
        for worker in self._workers:
            worker.thread.start()

    async def prepare(
        self,
        signal_: Signal,
        encoding: Encoding,
        content_encoding: str | None,
        body: bytes,
        project: str,
        received_us: int,
    ) -> Prepared:
        if self._closed:
            raise WorkerError("the worker pool is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Prepared] = loop.create_future()
        header = pickle.dumps(
            (signal_.value, encoding.value, content_encoding, project, received_us), protocol=pickle.HIGHEST_PROTOCOL
        )
        self.jobs.put((header, body, future, loop))
        return await future

    def close(self) -> None:
        """Let the workers finish what was queued, then stop them. Called after the receivers stopped."""
        if self._closed:
            return
        self._closed = True
        for _ in self._workers:
            self.jobs.put(None)
        for worker in self._workers:
            if worker.thread.is_alive():
                worker.thread.join(30)
            worker.stop()
