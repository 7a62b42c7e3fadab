from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import RUNNING, ServerProcess


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
