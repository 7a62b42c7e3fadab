"""Child processes that never outlive their parent."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGTERM, parent_pid: int | None = None) -> None:
    """In a child (before exec, or first thing in a worker): on Linux, receive `sig` when the parent dies, even by
    SIGKILL, so no orphan is left behind. With `parent_pid`, also exit at once if the parent already died before
    the request took effect."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(0)
