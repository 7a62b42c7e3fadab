"""Lake mode: the store as a DuckLake (a PostgreSQL catalog plus Parquet files in a shared folder or S3), shared by
any number of `callscope serve` processes.

A node opens an in-memory DuckDB, loads the DuckLake and PostgreSQL extensions from their PyPI wheels (pinned to
the duckdb release, so nothing is downloaded at run time), attaches the lake as `lake` and makes it the default
database: every query above the store names its tables without a database and runs unchanged.

DuckLake has no PRIMARY KEY, UNIQUE or sequences. The lake's schema is the embedded schema (the same ordered
migrations, core/migrations.py) with those left out (`keyless`); uniqueness of stored spans is kept by the writer,
which commits under the catalog's commit lock (core/catalog.py) and leaves out rows already stored.
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import psycopg

from core import ids
from core.catalog import Catalog, prepare_ledger

log = logging.getLogger(__name__)

# The extension wheels (pyproject.toml) install <package>/extensions/v<duckdb>/<name>.duckdb_extension.
EXTENSIONS = (("duckdb_extension_ducklake", "ducklake"), ("duckdb_extension_postgres_scanner", "postgres_scanner"))
HTTPFS = ("duckdb_extension_httpfs", "httpfs")
METADATA_SCHEMA = "callscope_lake"  # the catalog database's schema holding DuckLake's tables
MIGRATE_LOCK = 0x63730001  # advisory lock key: one node at a time brings the lake's schema up to date


class LakeError(RuntimeError):
    """The lake cannot be opened with these settings; the message says why."""


@dataclass(frozen=True)
class LakeConfig:
    """Where a lake is: the catalog (a libpq connection string) and the data path (a folder or s3://bucket/prefix)."""

    catalog: str
    data_path: str
    s3_endpoint: str | None = None
    s3_key_id: str | None = None
    s3_secret: str | None = None
    s3_region: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> LakeConfig:
        if not settings.lake_catalog or not settings.lake_data_path:
            raise LakeError("store = lake needs lake_catalog (a PostgreSQL connection string) and lake_data_path")
        return cls(
            settings.lake_catalog,
            settings.lake_data_path,
            settings.lake_s3_endpoint,
            settings.lake_s3_key_id,
            settings.lake_s3_secret,
            settings.lake_s3_region,
        )

    @property
    def is_s3(self) -> bool:
        return self.data_path.startswith("s3://")

    def data_dir(self) -> str:
        """The data path as DuckLake wants it: a folder ends with a separator (files go inside it)."""
        if self.is_s3:
            return self.data_path.rstrip("/") + "/"
        path = Path(self.data_path).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return str(path) + "/"


def _literal(value: str) -> str:
    """A SQL string literal. ATTACH and CREATE SECRET take no bound parameters; these values come from the
    operator's settings, never from a request, and are quoted here so a quote in them cannot end the literal."""
    return "'" + value.replace("'", "''") + "'"


def extension_file(package: str, name: str) -> Path:
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise LakeError(
            f"lake mode needs the lake extra (pip install 'callscope[lake]': duckdb 1.5.5 and its DuckLake wheels);"
            f" {package.replace('_', '-')} is missing"
        ) from None
    path = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise LakeError(f"{path} is missing: the extension wheel does not match duckdb {duckdb.__version__}")
    return path


class LakeConnection:
    """The store's connection in lake mode: a DuckDB connection whose cursors, like itself, use the lake as their
    default database (`USE` holds per cursor in DuckDB, and the code above the store takes cursors freely)."""

    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self._db = db

    def cursor(self) -> duckdb.DuckDBPyConnection:
        cur = self._db.cursor()
        cur.execute("USE lake")
        return cur

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def connect(config: LakeConfig, *, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the lake (its cursors too), its schema up to date."""
    db = duckdb.connect(":memory:")
    db.execute("SET TimeZone = 'UTC'")
    if threads is not None:
        db.execute(f"SET threads = {int(threads)}")
    for package, name in (*EXTENSIONS, *([HTTPFS] if config.is_s3 else [])):
        db.execute(f"LOAD {_literal(str(extension_file(package, name)))}")
    if config.is_s3:
        parts = ["TYPE s3", "URL_STYLE 'path'"]
        for key, value in (
            ("KEY_ID", config.s3_key_id),
            ("SECRET", config.s3_secret),
            ("REGION", config.s3_region),
        ):
            if value:
                parts.append(f"{key} {_literal(value)}")
        if config.s3_endpoint:
            endpoint = config.s3_endpoint
            parts.append(f"USE_SSL {'false' if endpoint.startswith('http://') else 'true'}")
            parts.append(f"ENDPOINT {_literal(re.sub(r'^https?://', '', endpoint))}")
        db.execute(f"CREATE SECRET callscope_lake ({', '.join(parts)})")
    # One node at a time creates DuckLake's tables in a fresh catalog and brings the schema up to date; the others
    # wait for it here (two first ATTACHes at once collide in PostgreSQL).
    try:
        catalog = Catalog(config.catalog).__enter__()
    except psycopg.Error as exc:
        raise LakeError(f"cannot reach the lake's catalog: {_without_secrets(str(exc))}") from None
    with catalog, catalog.locked(MIGRATE_LOCK):
        try:
            db.execute(
                f"ATTACH {_literal('ducklake:postgres:' + config.catalog)} AS lake"
                f" (DATA_PATH {_literal(config.data_dir())}, METADATA_SCHEMA {_literal(METADATA_SCHEMA)},"
                " DATA_INLINING_ROW_LIMIT 0)"
            )
        except duckdb.Error as exc:
            raise LakeError(f"cannot open the lake (catalog or data path): {_without_secrets(str(exc))}") from None
        db.execute("USE lake")
        migrate(db)
        ids.prepare_lake(db, catalog)
        prepare_ledger(catalog)
    return LakeConnection(db)  # type: ignore[return-value]  (quacks like the connection it wraps)


def data_files(db: duckdb.DuckDBPyConnection) -> int:
    """Live Parquet data files of the lake, all tables (read from the catalog DuckLake attached beside it)."""
    row = db.execute(
        f"SELECT count(*) FROM __ducklake_metadata_lake.{METADATA_SCHEMA}.ducklake_data_file"  # noqa: S608
        " WHERE end_snapshot IS NULL"
    ).fetchone()
    return int(row[0]) if row else 0


def maintain(db: duckdb.DuckDBPyConnection, *, keep_hours: float) -> dict[str, int]:
    """DuckLake's own maintenance: adjacent small files merged, snapshots older than `keep_hours` expired and the
    files nothing references any more deleted. The caller holds the commit lock. Returns the live data files
    before and after.

    Data inlining (small inserts kept in the catalog) is off (see `connect`): with duckdb 1.5.5 a flush of inlined
    data by one process aborted another process reading the lake ("Attempted to access index 0 within vector of
    size 0", FATAL), so every commit writes a file and this merges them."""
    before = data_files(db)
    horizon = datetime.now(UTC) - timedelta(hours=keep_hours)
    db.execute("CALL ducklake_merge_adjacent_files('lake')")
    db.execute("CALL ducklake_expire_snapshots('lake', older_than => ?::TIMESTAMPTZ)", [horizon])
    db.execute("CALL ducklake_cleanup_old_files('lake', older_than => ?::TIMESTAMPTZ)", [horizon])
    return {"data_files_before": before, "data_files_after": data_files(db)}


def _without_secrets(message: str) -> str:
    return re.sub(r"password\s*=\s*\S+", "password=<secret>", message, flags=re.IGNORECASE)


# -- the keyless schema ------------------------------------------------------------------------------------------

_TABLE_KEY = re.compile(r",\s*PRIMARY KEY\s*\([^)]*\)", re.IGNORECASE)
_COLUMN_KEY = re.compile(r"\s+(PRIMARY KEY|UNIQUE)\b", re.IGNORECASE)
_NEXTVAL = re.compile(r"\s+DEFAULT\s+nextval\('[^']*'\)", re.IGNORECASE)
# m014 rebuilds `calls` only to drop its primary key, which the lake's `calls` never had.
_SKIP = re.compile(r"\s*(CREATE TABLE calls_m014|DROP TABLE calls\b|ALTER TABLE calls_m014|ALTER TABLE calls ALTER)")


def keyless(sql: str) -> str | None:
    """A migration statement as the lake takes it: keys and sequence defaults left out; None: skip it (a sequence)."""
    if re.match(r"\s*CREATE\s+SEQUENCE\b", sql, re.IGNORECASE) or _SKIP.match(sql):
        return None
    return _NEXTVAL.sub("", _COLUMN_KEY.sub("", _TABLE_KEY.sub("", sql)))


class _Keyless:
    """What a migration function sees in lake mode: a connection whose execute() applies `keyless`."""

    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self._db = db

    def execute(self, sql: str, *args: Any) -> Any:
        changed = keyless(sql)
        return self._db if changed is None else self._db.execute(changed, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def migrate(db: duckdb.DuckDBPyConnection) -> list[str]:
    """The embedded store's migrations, applied keyless (see the module's docstring)."""
    from core.store import migrate as migrate_store  # the one loop over MIGRATIONS and schema_migrations

    return migrate_store(_Keyless(db))  # type: ignore[arg-type]
