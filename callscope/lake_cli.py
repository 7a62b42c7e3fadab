"""Commands that read a lake directly (store = lake): any number of processes may open a lake beside its nodes,
so these need no server. Commands that change the store offline refuse a lake (callscope/cli.py says what to do)."""

from __future__ import annotations

from typing import BinaryIO

from analytics.export import ExportFormat, export_from_db
from core.settings import Settings
from core.store import open_store


def export_from_lake(settings: Settings, fmt: ExportFormat, window: dict[str, list[str]], out: BinaryIO) -> int:
    """`callscope export` without --server on a lake: the same export as from a stopped file, read from the lake."""
    db = open_store(settings)
    try:
        return export_from_db(db, fmt, window, out)
    finally:
        db.close()
