"""`callscope migrate --to LAKE.toml`: copy a stopped embedded store (--data-dir) into a lake, with a progress bar;
run it again after an interruption and it goes on where it stopped (core/lake_copy.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from core import ids, lake
from core.catalog import Catalog
from core.lake_copy import CopyError, copy_store
from core.settings import Settings, load_settings
from core.store import StoreLockedError, StoreVersionError, connect


def add_arguments(p: argparse.ArgumentParser, add_setting_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    add_setting_flags(p)
    p.add_argument(
        "--to",
        required=True,
        metavar="LAKE.toml",
        help="config file of the lake to copy into (store = 'lake', lake_catalog, lake_data_path, ...);"
        " CALLSCOPE_LAKE_* environment variables count too",
    )
    p.add_argument("--chunk-rows", type=int, default=500_000, help="rows per committed chunk (default 500000)")


def run(args: argparse.Namespace, source: Settings) -> int:
    from tqdm import tqdm

    target = load_settings(config_path=args.to)
    if target.store != "lake":
        print(f"callscope migrate: {args.to} must say store = 'lake'", file=sys.stderr)
        return 2
    try:
        connect(source.db_path, read_only=True).close()  # the source exists and no server holds it
    except (FileNotFoundError, StoreLockedError, StoreVersionError) as exc:
        print(f"callscope migrate: {exc}", file=sys.stderr)
        return 2
    try:
        db = lake.connect(lake.LakeConfig.from_settings(target))
    except lake.LakeError as exc:
        print(f"callscope migrate: {exc}", file=sys.stderr)
        return 2
    bar = tqdm(unit=" rows", unit_scale=True, disable=not sys.stderr.isatty(), file=sys.stderr)
    try:
        results = copy_store(
            db,
            source.db_path,
            chunk_rows=args.chunk_rows,
            total=lambda n: setattr(bar, "total", n),
            progress=bar.update,
        )
        # the copied rows keep their ids: the lake's id sequences move past them (core/ids.py)
        with Catalog(target.lake_catalog or "") as catalog, catalog.locked(lake.MIGRATE_LOCK):
            ids.prepare_lake(db, catalog)
    except CopyError as exc:
        print(f"callscope migrate: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
        db.close()
    width = max(len(r.table) for r in results)
    for r in results:
        print(f"{r.table:{width}}  {r.source_rows:>12,} -> {r.lake_rows:>12,}  {'ok' if r.ok else 'MISMATCH'}")
    if not all(r.ok for r in results):
        print("callscope migrate: counts differ (see above); run it again to resume", file=sys.stderr)
        return 1
    print(f"copied {sum(r.source_rows for r in results):,} rows of {source.db_path} into the lake", file=sys.stderr)
    return 0
