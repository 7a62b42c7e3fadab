"""Every setting in one place: name, default, help, validation.

Precedence, like the OpenTelemetry exporters: command-line flag > environment variable (CALLSCOPE_<NAME>)
> config file (TOML, `<data-dir>/callscope.toml` or `--config`) > default.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from core.pricebook import PriceBookError, PriceEntry, check_no_overlap, parse_entry

ENV_PREFIX = "CALLSCOPE_"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting and the source."""


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def _parse_port(raw: Any) -> int:
    port = int(raw)
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0-65535, got {port}")
    return port


def _positive_int(raw: Any) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(f"must be a positive integer, got {value}")
    return value


def _positive_float(raw: Any) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


def _non_negative_int(raw: Any) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(f"must be zero or positive, got {value}")
    return value


def _non_negative_float(raw: Any) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError(f"must be zero or positive, got {value}")
    return value


def _parse_keys(raw: Any) -> dict[str, str]:
    """API keys: "key1=project-a,key2" (a key without a project maps to project "default"), or a TOML table."""
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    keys: dict[str, str] = {}
    for item in str(raw).split(","):
        item = item.strip()
        if not item:
            continue
        key, _, project = item.partition("=")
        if len(key.strip()) < 8:
            raise ValueError("each API key must be at least 8 characters long")
        keys[key.strip()] = project.strip() or "default"
    return keys


def _parse_pairs(raw: Any) -> dict[str, str]:
    """'name=value' pairs separated by commas, or a TOML table; names and values are checked by their users."""
    if isinstance(raw, Mapping):
        return {str(k).strip(): str(v).strip() for k, v in raw.items()}
    pairs: dict[str, str] = {}
    for item in str(raw).split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"expected name=value pairs separated by commas, got {item.strip()!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def _parse_scoped_keys(raw: Any) -> dict[str, str]:
    """Read or write keys: "key1=project-a,key2" (a bare key, or 'key=*', covers every project), or a TOML table
    or list. Each key acts only on its project's calls, statistics, alerts and exports."""
    if isinstance(raw, Mapping):
        items = [f"{k}={v}" for k, v in raw.items()]
    elif isinstance(raw, list | tuple | set | frozenset):
        items = [str(k) for k in raw]
    else:
        items = str(raw).split(",")
    keys: dict[str, str] = {}
    for item in items:
        key, _, project = item.strip().partition("=")
        if not key.strip():
            continue
        if len(key.strip()) < 8:
            raise ValueError("each key must be at least 8 characters long")
        keys[key.strip()] = project.strip() or "*"
    return keys


def _parse_session_hours(raw: Any) -> float:
    hours = float(raw)
    if not 0 < hours <= 24 * 30:
        raise ValueError(f"must be more than 0 and at most 720 hours, got {hours}")
    return hours


def _parse_store(raw: Any) -> str:
    value = str(raw).strip().lower()
    if value not in {"embedded", "lake"}:
        raise ValueError(f"expected 'embedded' or 'lake', got {raw!r}")
    return value


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_ingest_workers() -> int:
    """One worker per CPU, up to 4; none on one CPU (a thread of the server then normalises).

    On 2 CPUs, 2 workers beat 1 (measured: 8 clients, 40k vs ~20k spans/s): normalising takes about two
    thirds of the CPU, and the server process (sockets, DuckDB) needs only part of a core."""
    cpus = available_cpus()
    return 0 if cpus < 2 else min(cpus, 4)


def _parse_workers(raw: Any) -> int:
    if isinstance(raw, str) and raw.strip().lower() == "auto":
        return default_ingest_workers()
    value = int(raw)
    if not 0 <= value <= 64:
        raise ValueError(f"must be 0-64 or 'auto', got {value}")
    return value


def _parse_security(raw: Any) -> str:
    mode = str(raw).strip().lower()
    if mode not in {"starttls", "tls", "none"}:
        raise ValueError(f"expected starttls, tls or none, got {raw!r}")
    return mode


def _parse_level(raw: Any) -> str:
    level = str(raw).upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(f"expected debug, info, warning or error, got {raw!r}")
    return level


def _retention_days(kind: str, raw: Any) -> str:
    """A kind's days ('forever' or a positive whole number); which kinds exist is checked by analytics/retention.py
    when the server starts (core knows no kinds of data)."""
    text = str(raw).strip().lower().removesuffix("d")
    if not kind or not kind.replace("_", "").isalnum():
        raise ValueError(f"{kind!r} is not a kind of data")
    if text in {"forever", "never", "none", "0"}:
        return "forever"
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{kind}={raw!r}: expected a number of days (at least 1) or 'forever'")
    return text


def _parse_retention(raw: Any) -> dict[str, str]:
    return {k: _retention_days(k, v) for k, v in _parse_pairs(raw).items()}


def _parse_project_retention(raw: Any) -> dict[str, dict[str, str]]:
    """'demo:calls=7,content=1;prod:calls=365', or a TOML table of tables {demo = {calls = 7}}."""
    if isinstance(raw, Mapping):
        return {str(p).strip(): _parse_retention(dict(kinds)) for p, kinds in raw.items()}
    out: dict[str, dict[str, str]] = {}
    for part in str(raw).split(";"):
        if not part.strip():
            continue
        project, sep, pairs = part.partition(":")
        if not sep or not project.strip():
            raise ValueError(f"expected project:kind=days,... separated by ';', got {part.strip()!r}")
        out[project.strip()] = _parse_retention(pairs)
    return out


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[Any], Any] = str
    secret: bool = False
    # A former name still accepted (flag, environment and config file), so a rename breaks no deployment.
    renamed_from: str | None = None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def names(self, *, env: bool) -> list[str]:
        """The names this setting goes by (environment variables, or config-file keys), current name first."""
        names = [self.name, *([self.renamed_from] if self.renamed_from else [])]
        return [ENV_PREFIX + n.upper() if env else n for n in names]

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def default_data_dir() -> str:
    return platformdirs.user_data_dir("callscope", appauthor=False)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "data_dir",
        None,
        "Folder holding the DuckDB store (callscope.duckdb) and the optional callscope.toml."
        " Default: the per-user data folder (e.g. ~/.local/share/callscope).",
        str,
    ),
    Setting(
        "host",
        "127.0.0.1",
        "Address the OTLP receivers and the API listen on. Binding to a non-loopback"
        " address requires API keys or --allow-open.",
        str,
    ),
    Setting("otlp_http_port", 4318, "Port of the OTLP/HTTP receiver (and the read API).", _parse_port),
    Setting("otlp_grpc_port", 4317, "Port of the OTLP/gRPC receiver.", _parse_port),
    Setting("allow_open", False, "Allow binding to a non-loopback address without API keys.", _parse_bool),
    Setting(
        "api_keys",
        {},
        "Ingest API keys, 'key=project' pairs separated by commas (a bare key maps to"
        " project 'default'). Sent as 'Authorization: Bearer KEY' or 'x-api-key: KEY'. Never logged.",
        _parse_keys,
        secret=True,
    ),
    Setting(
        "read_keys",
        {},
        "Viewer keys for the read API (/api/v1), 'key=project' pairs separated by commas (a bare key, or"
        " key=*, reads every project). When any key or user is configured, every API request needs one"
        " ('Authorization: Bearer KEY' or 'x-api-key: KEY'). Never logged.",
        _parse_scoped_keys,
        secret=True,
    ),
    Setting(
        "write_keys",
        {},
        "Editor keys (change rules, silences, budgets, prices, release markers), 'key=project' pairs like"
        " read_keys. Never logged.",
        _parse_scoped_keys,
        secret=True,
    ),
    Setting(
        "api_max_queries",
        4,
        "Read API queries run at once; more wait their turn, so analytics never starves ingest.",
        _positive_int,
    ),
    Setting(
        "rollup_interval_seconds",
        60.0,
        "How often the hourly rollups fold newly received calls (late data re-folds the hours it lands in).",
        _positive_float,
    ),
    Setting(
        "rollup_lag_seconds",
        60.0,
        "Calls received in the last this many seconds are left to the next fold (they may still be queued);"
        " queries add them from the raw calls, so answers stay exact.",
        _non_negative_float,
    ),
    Setting(
        "max_body_bytes",
        20 * 1024 * 1024,
        "Largest decompressed OTLP request body accepted; larger bodies get HTTP 413.",
        _positive_int,
    ),
    Setting(
        "queue_max_rows",
        200_000,
        "Rows (calls, spans, content events, metric points) that may wait for the writer; beyond it requests"
        " get HTTP 429 (gRPC UNAVAILABLE) with Retry-After, so memory stays bounded.",
        _positive_int,
        renamed_from="queue_max_spans",
    ),
    Setting(
        "max_inflight_requests",
        64,
        "Requests decoded at once; beyond it requests get HTTP 503 with Retry-After before their body is read.",
        _positive_int,
    ),
    Setting(
        "batch_max_rows",
        50_000,
        "Most rows the writer commits in one transaction.",
        _positive_int,
        renamed_from="batch_max_spans",
    ),
    Setting(
        "batch_max_wait_ms",
        20.0,
        "How long the writer waits for more requests before committing a partly filled transaction.",
        _positive_float,
    ),
    Setting(
        "checkpoint_mb",
        256,
        "DuckDB checkpoints (moves its write-ahead log into the store file) when the log reaches this size."
        " Each checkpoint rewrites the primary-key index, so larger means cheaper ingest, but more memory"
        " until the checkpoint (measured at ~450k calls: ~520-550 MiB RSS at 256 against ~450 at 16) and a"
        " longer log replay when the server restarts after a crash (about 2 s for 256 MB).",
        _positive_int,
    ),
    Setting(
        "duckdb_threads",
        0,
        "Threads DuckDB may use in the server; 0: one per CPU (DuckDB's default). The read API's scans use them"
        " all (hourly percentiles over 10M calls: 0.45 s with 2 threads, 0.8 s with 1); ingest barely notices"
        " (33k against 35k spans/s with 2 ingest workers on 2 CPUs). 1 favours ingest on a busy machine.",
        _non_negative_int,
    ),
    Setting(
        "ingest_workers",
        "auto",
        "Worker processes that decode and normalise requests (0: a thread of the server does it). 'auto' is"
        " one per CPU available, at most 4 (0 on one CPU).",
        _parse_workers,
    ),
    Setting("retry_after_seconds", 1, "Retry-After value sent with 429/503 answers.", _positive_int),
    Setting(
        "capture_content",
        False,
        "Store prompt and completion content (redacted). Off by default.",
        _parse_bool,
    ),
    Setting(
        "content_max_chars",
        16_384,
        "Longest stored prompt or completion text; longer text is cut.",
        _positive_int,
    ),
    Setting("log_level", "INFO", "Log level: debug, info, warning or error.", _parse_level),
    Setting(
        "alerts_file",
        None,
        "YAML file of alert rules, checked at start and reloaded when it changes or on SIGHUP (an invalid file"
        " keeps the rules loaded before). Default: <data-dir>/alerts.yaml.",
        str,
    ),
    Setting(
        "dashboard_host",
        "127.0.0.1",
        "Address the dashboard (`callscope dashboard`, started by `callscope up`) listens on.",
        str,
    ),
    Setting("dashboard_port", 8501, "Port of the dashboard.", _parse_port),
    Setting(
        "api_url",
        None,
        "Read API the dashboard asks, e.g. http://collector:4318/api/v1. Default: this server's,"
        " http://<host>:<otlp_http_port>/api/v1 (127.0.0.1 when host is 0.0.0.0 or ::).",
        str,
    ),
    Setting(
        "api_key",
        None,
        "Read key the dashboard sends to the read API. Default: the first of read_keys. Never logged.",
        str,
        secret=True,
    ),
    Setting(
        "dashboard_url",
        None,
        "Public address of the dashboard, used for links in e-mails and webhooks (e.g. https://callscope.example.com)."
        " Default: http://<dashboard_host>:<dashboard_port>.",
        str,
    ),
    Setting("smtp_host", None, "SMTP server for alert and digest e-mails; unset: no e-mail.", str),
    Setting("smtp_port", 587, "Port of the SMTP server (587 for STARTTLS, 465 for TLS, 25 plain).", _parse_port),
    Setting(
        "smtp_security",
        "starttls",
        "starttls (upgrade a plain connection), tls (TLS from the first byte) or none.",
        _parse_security,
    ),
    Setting("smtp_user", None, "User to log in to the SMTP server as; unset: no login.", str),
    Setting("smtp_password", None, "Password of smtp_user. Environment or config file only; never logged.", str, True),
    Setting("smtp_from", None, "Sender address of e-mails. Default: callscope@<this host's name>.", str),
    Setting(
        "smtp_ca_file",
        None,
        "CA certificates (PEM) that sign the SMTP server's certificate, for a private CA. Default: the system's.",
        str,
    ),
    Setting(
        "smtp_timeout_seconds", 10.0, "How long to wait for the SMTP server before an attempt fails.", _positive_float
    ),
    Setting(
        "notify_interval_seconds",
        2.0,
        "How often the notification dispatcher looks at alerts and the delivery worker at the outbox.",
        _positive_float,
    ),
    Setting(
        "notify_retry_seconds",
        10.0,
        "Wait before retrying a failed delivery; doubles with each failure up to notify_retry_max_seconds.",
        _positive_float,
    ),
    Setting("notify_retry_max_seconds", 600.0, "Longest wait between two delivery attempts.", _positive_float),
    Setting(
        "notify_give_up_hours",
        24.0,
        "A notification still undelivered this long after it was queued is marked failed (with its last error).",
        _positive_float,
    ),
    Setting(
        "drift_interval_seconds",
        3600.0,
        "How often the drift job compares the current window with the reference, per service and model. A restart"
        " keeps the schedule: when the newest stored run already compared this hour's windows, the next run comes"
        " one interval after it (a changed drift_tests or drift_baselines shows from that run on).",
        _positive_float,
    ),
    Setting("drift_current_hours", 24.0, "The drift job's current window: the last this many hours.", _positive_float),
    Setting(
        "drift_reference_days",
        7.0,
        "The drift job's reference window: this many days just before the current window (or before a pinned"
        " release, see drift_baselines).",
        _positive_float,
    ),
    Setting(
        "drift_min_samples",
        100,
        "Fewest values a window needs for a drift decision; with fewer the cell is 'not enough data', never drifted.",
        _positive_int,
    ),
    Setting(
        "drift_tests",
        {},
        "Per drift metric, the test and/or threshold to use instead of the automatic choice: 'metric=test',"
        " 'metric=test:threshold' or 'metric=:threshold', separated by commas (or a TOML table).",
        _parse_pairs,
    ),
    Setting(
        "drift_baselines",
        {},
        "Pinned references: 'service=release' pairs separated by commas (or a TOML table); that service's reference"
        " is then the drift_reference_days before the release was first seen, its current window what follows it.",
        _parse_pairs,
    ),
    Setting(
        "anomaly_interval_seconds",
        300.0,
        "How often the anomaly job scores the hours completed since its last run (hourly series per service and"
        " per model).",
        _positive_float,
    ),
    Setting(
        "anomaly_threshold",
        5.0,
        "Robust score (deviation from the seasonal median in MADs, see README) from which an hour is an anomaly.",
        _positive_float,
    ),
    Setting(
        "anomaly_min_calls",
        30,
        "Fewest calls an hour needs before its error rate, 429 share or p95 latency is scored.",
        _positive_int,
    ),
    Setting(
        "anomaly_history_weeks",
        4,
        "Weeks of history the seasonal baseline (same hour of the week) looks back.",
        _positive_int,
    ),
    Setting(
        "detection_retention_days",
        90,
        "Days of drift results and hourly anomaly scores kept; older ones are deleted by the jobs.",
        _positive_int,
    ),
    Setting(
        "session_hours",
        12.0,
        "How long a dashboard sign-in (a password session or an OIDC ID token's own expiry, whichever is"
        " sooner) lasts before the user must sign in again.",
        _parse_session_hours,
    ),
    Setting(
        "oidc_issuer",
        None,
        "OpenID Connect issuer URL (e.g. https://login.example.com/realms/acme). Set with oidc_client_id to sign"
        " dashboard users in through your identity provider; users are matched by the ID token's e-mail.",
        str,
    ),
    Setting("oidc_client_id", None, "OpenID Connect client id of the dashboard.", str),
    Setting(
        "oidc_client_secret",
        None,
        "OpenID Connect client secret of the dashboard. Environment or config file only; never logged.",
        str,
        True,
    ),
    Setting(
        "oidc_cookie_secret",
        None,
        "Secret that signs the dashboard's sign-in cookie. Default: a new random one at each dashboard start"
        " (users sign in again after a restart). Never logged.",
        str,
        True,
    ),
    Setting(
        "prices_max_age_days",
        60,
        "Age in days (of the newest price in the installed genai-prices data) from which price coverage warns that"
        " the data is stale.",
        _positive_int,
    ),
    Setting(
        "retention",
        {},
        "Days kept per kind of data, e.g. 'calls=90,content=7' ('forever' keeps): calls, spans, content, metrics,"
        " alert_history, notifications, audit, rollups_hourly, rollups_daily. Unset kinds: see the README.",
        _parse_retention,
    ),
    Setting(
        "retention_projects",
        {},
        "Per-project retention overrides, e.g. 'demo:calls=7,content=1;prod:calls=365'.",
        _parse_project_retention,
    ),
    Setting(
        "retention_interval_seconds",
        3600.0,
        "How often the retention job runs (it does nothing while no policy removes anything).",
        _positive_float,
    ),
    Setting(
        "retention_batch_rows",
        50_000,
        "Most rows one retention delete transaction removes (smaller: shorter pauses for ingest, more batches).",
        _positive_int,
    ),
    Setting(
        "store",
        "embedded",
        "Where the data lives: 'embedded' (one DuckDB file in data_dir, one `callscope serve`) or 'lake' (DuckLake:"
        " a PostgreSQL catalog plus Parquet files, shared by any number of `callscope serve` nodes).",
        _parse_store,
    ),
    Setting(
        "lake_catalog",
        None,
        "store = lake: the PostgreSQL catalog as a libpq connection string, e.g. 'host=db.internal dbname=callscope"
        " user=callscope' (a password is better given as PGPASSWORD). Never logged.",
        str,
        True,
    ),
    Setting(
        "lake_data_path",
        None,
        "store = lake: where the Parquet files go: a folder every node mounts (NFS, ...) or s3://bucket/prefix.",
        str,
    ),
    Setting("lake_s3_endpoint", None, "store = lake on s3://: the endpoint of an S3-compatible server.", str),
    Setting("lake_s3_key_id", None, "store = lake on s3://: the access key id.", str),
    Setting("lake_s3_secret", None, "store = lake on s3://: the secret access key. Never logged.", str, True),
    Setting("lake_s3_region", None, "store = lake on s3://: the region (unset: the server's default).", str),
    Setting(
        "lake_node_name",
        None,
        "store = lake: this node's name in /healthz, /metrics and the logs. Default: <host name>:<otlp_http_port>.",
        str,
    ),
    Setting(
        "lake_lease_seconds",
        2.0,
        "store = lake: how often a node tries to take the job lease (rollups, alerts, notification, detection,"
        " maintenance run on its holder only); a dead holder's jobs move to another node within about this long.",
        _positive_float,
    ),
    Setting(
        "lake_maintenance_seconds",
        600.0,
        "store = lake: how often the lease holder merges small Parquet files and expires old snapshots.",
        _positive_float,
    ),
    Setting(
        "lake_snapshot_keep_hours",
        1.0,
        "store = lake: snapshots older than this are expired by maintenance (time travel reaches back this far).",
        _positive_float,
    ),
    Setting(
        "lake_notify_claim_seconds",
        120.0,
        "store = lake: a notification the lease holder starts sending is claimed for this long; another node sends"
        " it only after the claim ran out (the holder died mid-send). Keep it above smtp_timeout_seconds and the"
        " webhooks' timeouts.",
        _positive_float,
    ),
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


# A user price from the config file's [[prices]]: an entry of the price book (core/pricebook.py).
PriceOverride = PriceEntry


@dataclass(frozen=True)
class Settings:
    """The resolved settings (load_settings builds it). One field per entry of SETTINGS, which holds the defaults,
    the help and the validation: no default is written twice."""

    data_dir: Path
    host: str
    otlp_http_port: int
    otlp_grpc_port: int
    allow_open: bool
    api_keys: Mapping[str, str]
    read_keys: Mapping[str, str]
    write_keys: Mapping[str, str]
    api_max_queries: int
    rollup_interval_seconds: float
    rollup_lag_seconds: float
    max_body_bytes: int
    queue_max_rows: int
    max_inflight_requests: int
    batch_max_rows: int
    batch_max_wait_ms: float
    checkpoint_mb: int
    duckdb_threads: int
    ingest_workers: int
    retry_after_seconds: int
    capture_content: bool
    content_max_chars: int
    log_level: str
    alerts_file: str | None
    dashboard_host: str
    dashboard_port: int
    api_url: str | None
    api_key: str | None
    dashboard_url: str | None
    smtp_host: str | None
    smtp_port: int
    smtp_security: str
    smtp_user: str | None
    smtp_password: str | None = field(repr=False)
    smtp_from: str | None
    smtp_ca_file: str | None
    smtp_timeout_seconds: float
    notify_interval_seconds: float
    notify_retry_seconds: float
    notify_retry_max_seconds: float
    notify_give_up_hours: float
    drift_interval_seconds: float
    drift_current_hours: float
    drift_reference_days: float
    drift_min_samples: int
    drift_tests: Mapping[str, str]
    drift_baselines: Mapping[str, str]
    anomaly_interval_seconds: float
    anomaly_threshold: float
    anomaly_min_calls: int
    anomaly_history_weeks: int
    detection_retention_days: int
    session_hours: float
    oidc_issuer: str | None
    oidc_client_id: str | None
    oidc_client_secret: str | None = field(repr=False)
    oidc_cookie_secret: str | None = field(repr=False)
    prices_max_age_days: int
    retention: Mapping[str, str]
    retention_projects: Mapping[str, Mapping[str, str]]
    retention_interval_seconds: float
    retention_batch_rows: int
    store: str
    lake_catalog: str | None = field(repr=False)
    lake_data_path: str | None
    lake_s3_endpoint: str | None
    lake_s3_key_id: str | None
    lake_s3_secret: str | None = field(repr=False)
    lake_s3_region: str | None
    lake_node_name: str | None
    lake_lease_seconds: float
    lake_maintenance_seconds: float
    lake_snapshot_keep_hours: float
    lake_notify_claim_seconds: float
    # The config file's [[budgets]] (analytics/budgets.py), synced into the store when the server starts.
    budgets_config: tuple[Any, ...] = ()
    # The config file's [alerts] table (receivers, routes, inhibit rules) and [[digests]], parsed by
    # alerts/notify_config.py when the server starts.
    alerts_config: Mapping[str, Any] = field(default_factory=dict)
    digests_config: tuple[Any, ...] = ()
    price_overrides: tuple[PriceOverride, ...] = ()
    config_file: Path | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "callscope.duckdb"

    @property
    def alerts_path(self) -> Path:
        return Path(self.alerts_file).expanduser() if self.alerts_file else self.data_dir / "alerts.yaml"

    @property
    def read_api_url(self) -> str:
        """Where the dashboard finds the read API: api_url, else this server's own."""
        if self.api_url:
            return self.api_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.otlp_http_port}/api/v1"

    @property
    def dashboard_link(self) -> str:
        """The dashboard's address in links sent out (e-mails, webhooks): dashboard_url, else host and port."""
        if self.dashboard_url:
            return self.dashboard_url.rstrip("/")
        host = "127.0.0.1" if self.dashboard_host in ("0.0.0.0", "::", "") else self.dashboard_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.dashboard_port}"

    @property
    def dashboard_read_key(self) -> str | None:
        """The key the dashboard sends: api_key, else one of read_keys (sorted, so always the same one)."""
        return self.api_key or (sorted(self.read_keys)[0] if self.read_keys else None)

    def describe(self) -> dict[str, Any]:
        """The resolved settings with secrets masked, for logs and `callscope config`."""
        out: dict[str, Any] = {}
        for s in SETTINGS:
            value = getattr(self, s.name)
            if s.secret and isinstance(value, str):
                value = "<set>" if value else "<none>"  # not even the length of a password
            elif s.secret:
                value = f"<{len(value)} configured>" if value else "<none>"
            out[s.name] = str(value) if isinstance(value, Path) else value
        out["price_overrides"] = len(self.price_overrides)
        out["alert_receivers"] = len(self.alerts_config.get("receivers", []))
        out["digests"] = len(self.digests_config)
        out["config_file"] = str(self.config_file) if self.config_file else None
        return out


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: {exc}") from exc


def _price_overrides(raw: Any, path: Path | None) -> tuple[PriceOverride, ...]:
    entries: list[PriceEntry] = []
    for i, entry in enumerate(raw or []):
        try:
            parsed = parse_entry(entry, source="config")
            check_no_overlap(parsed, entries)
        except PriceBookError as exc:
            raise SettingsError(f"config file {path}: [[prices]] entry {i + 1} is invalid: {exc}") from exc
        entries.append(parsed)
    return tuple(entries)


def _opt_float(raw: Any) -> float | None:
    return None if raw is None else float(raw)


def load_settings(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
) -> Settings:
    """Resolve every setting: flag > environment > config file > default; validate each one."""
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    env = os.environ if env is None else env

    data_dir = cli.get("data_dir") or env.get(SETTINGS_BY_NAME["data_dir"].env) or default_data_dir()
    data_dir_path = Path(data_dir).expanduser()
    explicit_config = config_path or env.get(ENV_PREFIX + "CONFIG")
    path = Path(explicit_config).expanduser() if explicit_config else data_dir_path / "callscope.toml"
    if explicit_config and not path.is_file():
        raise SettingsError(f"config file {path} does not exist")
    file_values = _read_config_file(path) if path.is_file() else {}

    known = {name for s in SETTINGS for name in s.names(env=False)}
    unknown = set(file_values) - known - {"prices", "alerts", "digests", "budgets"}
    if unknown:
        raise SettingsError(f"config file {path}: unknown setting(s) {', '.join(sorted(unknown))}")

    values: dict[str, Any] = {"data_dir": data_dir_path}
    for s in SETTINGS:
        if s.name == "data_dir":
            continue
        for source, store in (
            ("flag " + s.flag, cli),
            ("environment " + s.env, env),
            (f"{path}", file_values),
        ):
            key = next((k for k in s.names(env=store is env) if k in store), None)
            if key is not None:
                raw = store[key]
                try:
                    values[s.name] = s.parse(raw)
                except (TypeError, ValueError) as exc:
                    shown = "<secret>" if s.secret else repr(raw)
                    raise SettingsError(f"{s.name} from {source} = {shown}: {exc}") from exc
                break
        else:
            if s.default is None:
                values[s.name] = None
            else:
                values[s.name] = s.parse(s.default) if not isinstance(s.default, dict) else dict(s.default)

    alerts_config = file_values.get("alerts", {})
    digests_config = file_values.get("digests", [])
    if not isinstance(alerts_config, Mapping):
        raise SettingsError(f"config file {path}: alerts must be a table ([alerts])")
    if not isinstance(digests_config, list):
        raise SettingsError(f"config file {path}: digests must be a list of tables ([[digests]])")
    budgets_config = file_values.get("budgets", [])
    if not isinstance(budgets_config, list):
        raise SettingsError(f"config file {path}: budgets must be a list of tables ([[budgets]])")
    return Settings(
        **values,
        budgets_config=tuple(budgets_config),
        alerts_config=alerts_config,
        digests_config=tuple(digests_config),
        price_overrides=_price_overrides(file_values.get("prices"), path),
        config_file=path if path.is_file() else None,
    )
