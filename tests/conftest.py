from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import RUNNING, ServerProcess
from tests.pg import Postgres, pg_bin


@pytest.fixture(autouse=True)
def no_leftover_servers() -> Iterator[None]:
    """A test that fails before stopping its server must not leave the process running (ports, CPU, files)."""
    before = {id(s) for s in RUNNING}
    yield
    for proc in [s for s in RUNNING if id(s) not in before]:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()
        RUNNING.remove(proc)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real `callscope serve` on free ports with its own store; stopped (SIGTERM) at the end if still up."""
    proc = ServerProcess(tmp_path / "data").start()
    yield proc
    if proc.proc and proc.proc.poll() is None:
        proc.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL (the lake's catalog) in a temporary folder, for the whole session; each lake test takes a
    fresh database of it (`postgres.new_database()`). Skipped only when PostgreSQL is not installed at all."""
    if pg_bin("initdb") is None or pg_bin("pg_ctl") is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    root = Path(tempfile.mkdtemp(prefix="callscope-pg-"))  # not under pytest's root-only folder: postgres reads it
    server = Postgres(root).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
