"""`callscope reprice`: re-price stored calls of a range with the current price book, with a progress bar.

With --server it asks a running server (POST /api/v1/prices/reprice, then polls the run), which is the way while
ingest runs: the server owns the store. Without it, it opens a stopped store itself. Either way the run is the
same (analytics/reprice.py): idempotent, the previous cost of each changed call kept in cost_history.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import httpx

from core.settings import Settings


def progress_bar(done: int, total: int, changed: int, out: TextIO = sys.stderr, width: int = 30) -> None:
    share = done / total if total else 1.0
    filled = int(share * width)
    out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {share:6.1%} {done}/{total} calls, {changed} changed")
    out.flush()


def reprice_on_server(url: str, params: dict[str, list[str]], key: str | None, poll_s: float = 0.5) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    base = url.rstrip("/") + "/api/v1/prices/reprice"
    with httpx.Client(timeout=30, headers=headers) as client:
        started = client.post(base, params=params)
        if started.status_code != 202:
            raise ValueError(started.json().get("error", started.text))
        run_id = started.json()["run_id"]
        while True:
            run = client.get(f"{base}/{run_id}").json()
            progress_bar(run["scanned"], run["total"], run["changed"])
            if run["status"] != "running":
                sys.stderr.write("\n")
                return run
            time.sleep(poll_s)


def reprice_store(settings: Settings, params: dict[str, list[str]]) -> dict[str, Any]:
    from analytics import reprice
    from analytics.query import parse_selection
    from collector.price_book import PriceBookService
    from core.store import connect

    dims = {k: v for k, v in params.items() if k not in ("from", "to", "meta")}
    selection, _ = parse_selection(params["from"][0], params["to"][0], None, None, dims, params.get("meta", []))
    if not settings.db_path.exists():
        raise FileNotFoundError(f"no callscope store at {settings.db_path}")
    db = connect(settings.db_path)
    try:
        service = PriceBookService(db, settings.price_overrides)
        service.load()
        run = reprice.start_run(db, selection, "cli", {k: v for k, v in dims.items()})
        result = reprice.run(
            db,
            selection,
            service.pricer(),
            run,
            on_progress=lambda p: progress_bar(p.scanned, p.total, p.changed),
            grace_s=0,
        )
        sys.stderr.write("\n")
        return reprice.get_run(db, result.run_id) or {}
    finally:
        db.close()
