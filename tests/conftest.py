from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import RUNNING, ServerProcess
from tests.pg import Postgres, pg_bin


def _lake_missing() -> str | None:
    """Why lake tests cannot run in this venv (None: they can)."""
    from core import lake

    try:
        for package, name in lake.EXTENSIONS:
            lake.extension_file(package, name)
    except lake.LakeError as exc:
        return str(exc)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Lake tests need the `lake` extra (duckdb 1.5.5 and its DuckLake wheels): in the main venv they are skipped,
    saying so; `make test` runs them in .venv-lake. Without `-m lake`, that venv (duckdb 1.5.5) runs nothing else."""
    missing = _lake_missing()
    if missing is None:
        return
    skip = pytest.mark.skip(reason=f"lake extra not installed here ({missing}); `make test-lake` runs it")
    for item in items:
        if "lake" in item.keywords:
            item.add_marker(skip)


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
