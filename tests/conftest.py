from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real `callscope serve` on free ports with its own store; stopped (SIGTERM) at the end if still up."""
    proc = ServerProcess(tmp_path / "data").start()
    yield proc
    if proc.proc and proc.proc.poll() is None:
        proc.stop()
