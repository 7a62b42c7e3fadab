"""The `callscope` command: serve, up, dashboard, demo, export, alerts, digest, retention, delete-user, config."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

# Children are started with fork+exec (and ingest workers with spawn): gRPC's fork handlers are never needed,
# and with them on, gRPC logs a warning for every child started while its threads run.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from callscope import __version__
from core.settings import SETTINGS, Settings, SettingsError, load_settings

# Secrets are never taken as flags: command lines are visible to every user of the machine (ps).
_NO_FLAG = {s.name for s in SETTINGS if s.secret}


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (flag > CALLSCOPE_* environment > callscope.toml > default)")
    group.add_argument("--config", help="TOML config file (default: <data-dir>/callscope.toml if present)")
    for s in SETTINGS:
        if s.name in _NO_FLAG:
            continue
        if isinstance(s.default, bool):
            group.add_argument(
                s.flag,
                dest=s.name,
                action="store_const",
                const=True,
                default=None,
                help=f"{s.help} [env {s.env}]",
            )
        else:
            old_flag = ["--" + s.renamed_from.replace("_", "-")] if s.renamed_from else []
            group.add_argument(
                s.flag,
                *old_flag,
                dest=s.name,
                default=None,
                metavar=s.name.upper(),
                help=f"{s.help} [env {s.env}; default {s.default}]",
            )


def _settings(args: argparse.Namespace) -> Settings:
    cli = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    return load_settings(cli, config_path=args.config)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%dT%H:%M:%S"
    )
    if level != "DEBUG":  # one line per scheduled run is noise; the jobs log what they did themselves
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _refused_on_lake(settings: Settings, command: str, instead: str) -> bool:
    """A command that opens the embedded file itself has no meaning with store = lake: say so and what to do."""
    if settings.store != "lake":
        return False
    print(
        f"callscope {command}: store = lake, and this command works on the embedded store file only; {instead}",
        file=sys.stderr,
    )
    return True


def _run_server(args: argparse.Namespace, main: Callable[[Settings], Coroutine[Any, Any, None]]) -> int:
    """Run `main` (serve, or up) until it stops; a server that cannot start says why and exits 2."""
    from callscope.server import StartupError
    from core.store import StoreLockedError, StoreVersionError

    settings = _settings(args)
    _setup_logging(settings.log_level)
    try:
        asyncio.run(main(settings))
    except (StartupError, StoreLockedError, StoreVersionError) as exc:
        print(f"callscope: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from callscope.server import serve

    return _run_server(args, serve)


def cmd_up(args: argparse.Namespace) -> int:
    from callscope.up import run_up

    if args.demo and _refused_on_lake(
        _settings(args), "up --demo", "the demo fills an embedded store; start `callscope up` without --demo"
    ):
        return 2
    return _run_server(args, functools.partial(run_up, demo=args.demo))


def cmd_dashboard(args: argparse.Namespace) -> int:
    from callscope.dashboard_launch import dashboard_url, run_dashboard

    settings = _settings(args)
    print(f"callscope dashboard on {dashboard_url(settings)}, reading {settings.read_api_url}", flush=True)
    return run_dashboard(settings)


def _export_window(args: argparse.Namespace) -> dict[str, list[str]]:
    """The export's window and filters as read-API parameters; the whole store when no window is given."""
    params: dict[str, list[str]] = {}
    if args.last:
        params["last"] = [args.last]
        if args.end:
            params["to"] = [args.end]
    else:
        params["from"] = [args.start or "1970-01-01T00:00:00Z"]
        params["to"] = [args.end or "2200-01-01T00:00:00Z"]
    for item in args.filter or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise SettingsError(f"--filter {item!r} must be DIMENSION=VALUE (e.g. model=gpt-4.1, meta.team=search)")
        if name.startswith("meta."):
            params.setdefault("meta", []).append(f"{name[5:]}={value}")
        else:
            params.setdefault(name, []).append(value)
    return params


def cmd_export(args: argparse.Namespace) -> int:
    from analytics.errors import QueryError
    from analytics.export import ExportFormat, export_from_store
    from callscope.export_client import export_from_server
    from callscope.lake_cli import export_from_lake
    from core.lake import LakeError
    from core.store import StoreLockedError, StoreVersionError

    settings = _settings(args)
    fmt = ExportFormat(args.format)
    window = _export_window(args)
    out_path = Path(args.output) if args.output and args.output != "-" else None
    try:
        with out_path.open("wb") if out_path else contextlib.nullcontext(sys.stdout.buffer) as out:
            if args.server:
                n = export_from_server(args.server, fmt, window, out, read_key=settings.dashboard_read_key)
            elif settings.store == "lake":  # any number of processes may read a lake: no server needed
                n = export_from_lake(settings, fmt, window, out)
            else:
                n = export_from_store(settings.db_path, fmt, window, out)
    except (FileNotFoundError, StoreLockedError, StoreVersionError, QueryError, ConnectionError, LakeError) as exc:
        print(f"callscope export: {exc}", file=sys.stderr)
        return 2
    print(f"exported {n} calls", file=sys.stderr)
    return 0


def cmd_reprice(args: argparse.Namespace) -> int:
    import httpx

    from analytics.errors import QueryError
    from callscope.reprice_cli import reprice_on_server, reprice_store
    from core.store import StoreLockedError

    settings = _settings(args)
    if not args.server and _refused_on_lake(
        settings, "reprice", "run it against a node: add --server http://NODE:4318"
    ):
        return 2
    params = _export_window(args)
    try:
        if args.server:
            run = reprice_on_server(args.server, params, settings.dashboard_read_key)
        else:
            run = reprice_store(settings, params)
    except (FileNotFoundError, StoreLockedError, QueryError, ValueError, httpx.HTTPError) as exc:
        hint = " (a server is running: add --server http://127.0.0.1:4318)" if isinstance(exc, StoreLockedError) else ""
        print(f"callscope reprice: {exc}{hint}", file=sys.stderr)
        return 2
    print(
        f"re-pricing run {run.get('run_id')}: {run.get('status')}; {run.get('scanned')} calls scanned,"
        f" {run.get('changed')} changed" + (f"; {run['error']}" if run.get("error") else ""),
        file=sys.stderr,
    )
    return 0 if run.get("status") == "done" else 1


def cmd_demo_bulk(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from core.store import StoreLockedError, connect
    from sample_data.bulk import write_calls

    settings = _settings(args)
    _setup_logging(settings.log_level)
    if _refused_on_lake(
        settings,
        "demo bulk",
        "send demo traffic to a node over OTLP (callscope demo), or fill an"
        " embedded store and copy it in with `callscope migrate`",
    ):
        return 2
    try:
        db = connect(settings.db_path)
    except StoreLockedError as exc:
        print(f"callscope demo bulk: {exc}", file=sys.stderr)
        return 2
    try:
        n = write_calls(
            db,
            n_calls=args.calls,
            days=args.days,
            end=datetime.now(UTC),
            seed=args.seed,
            n_users=args.users,
            n_models=args.models,
            progress=sys.stderr.isatty(),
        )
        db.execute("CHECKPOINT")
    finally:
        db.close()
    print(f"wrote {n} calls to {settings.db_path}", file=sys.stderr)
    return 0


def cmd_demo_send(args: argparse.Namespace) -> int:
    import signal
    import threading
    from datetime import UTC, datetime

    import numpy as np

    from sample_data import dataset
    from sample_data.script import script_for, to_us
    from sample_data.send import SendError, live, peak_rate, send_table
    from sample_data.traffic import World, generate

    logging.basicConfig(level=logging.INFO, format="demo: %(message)s")
    endpoint = args.endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://127.0.0.1:4318"
    progress = sys.stderr.isatty()
    rate = peak_rate(30.0 if args.rate_given is None else args.rate_given)
    if args.dataset or args.like_dataset:
        data = dataset.load()
        table, world = data.table, data.world
        if args.rate_given is None:  # the live trickle continues the data's own calls per hour
            rate = data.rate.calls_per_minute
        if args.like_dataset and not args.dataset:
            table = table.slice(0, 0)
    else:
        now = datetime.now(UTC)
        world = World.make(script_for(now, args.days), n_users=args.users, n_models=args.models)
        # No call from the future: the last traces are cut at now, as a collector would have them.
        table = generate(world, np.random.default_rng(args.seed), args.calls, received_by=to_us(now))
    try:
        if table.num_rows:
            print(f"demo: sending {table.num_rows} calls to {endpoint}", file=sys.stderr, flush=True)
            stats = send_table(endpoint, table, progress=progress)
            print(
                f"demo: loaded {stats.calls} calls ({stats.spans} spans) in {stats.seconds:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    except SendError as exc:
        print(f"callscope demo send: {exc}", file=sys.stderr)
        return 1
    if args.live:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        now_us = int(datetime.now(UTC).timestamp() * 1e6)
        print(f"demo: live traffic at ~{rate(now_us):.3g} calls/min now until stopped", file=sys.stderr, flush=True)
        sent = live(endpoint, world, calls_per_minute=rate, stop=stop, seed=args.seed)
        print(f"demo: sent {sent} live calls", file=sys.stderr, flush=True)
    return 0


def cmd_alerts_check(args: argparse.Namespace) -> int:
    from alerts.cli import check

    return check(args.files)


def cmd_alerts_test(args: argparse.Namespace) -> int:
    from alerts.cli import parse_time, test
    from analytics.errors import QueryError
    from core.store import StoreLockedError

    settings = _settings(args)
    if not args.server and _refused_on_lake(
        settings, "alerts test", "replay through a node: add --server http://NODE:4318"
    ):
        return 2
    try:
        start, end = parse_time(args.start, "--from"), parse_time(args.end, "--to")
        if end <= start:
            raise QueryError(f"--to ({end.isoformat()}) must be after --from ({start.isoformat()})")
        return test(
            args.file,
            start,
            end,
            db_path=settings.db_path,
            server=args.server,
            read_key=settings.dashboard_read_key,
            dashboard_url=settings.dashboard_link,
            as_json=args.json,
        )
    except (FileNotFoundError, StoreLockedError, QueryError, ConnectionError) as exc:
        hint = " (use --server URL to replay through a running server)" if isinstance(exc, StoreLockedError) else ""
        print(f"callscope alerts test: {exc}{hint}", file=sys.stderr)
        return 2


def cmd_digest_send(args: argparse.Namespace) -> int:
    from alerts.notify_config import ConfigError
    from callscope.digest_cli import send_now

    settings = _settings(args)
    if not args.server and _refused_on_lake(settings, "digest send", "ask a node: add --server http://NODE:4318"):
        return 2
    try:
        return send_now(settings, args.name or [], args.server)
    except ConfigError as exc:
        print(f"callscope digest: invalid notification config: {exc}", file=sys.stderr)
        return 2


def cmd_users(args: argparse.Namespace) -> int:
    from callscope.users_cli import run

    settings = _settings(args)
    if _refused_on_lake(
        settings,
        "users",
        "manage users through a node's API (/api/v1/access/users) or the dashboard's Access page as an admin",
    ):
        return 2
    return run(settings, args)


def cmd_retention(args: argparse.Namespace) -> int:
    """Apply (or, with --dry-run, count) the retention policy on a stopped store; --compact then rewrites the
    file so the freed space goes back to the file system."""
    from datetime import UTC, datetime

    from analytics import retention
    from core.store import StoreLockedError, connect

    settings = _settings(args)
    if _refused_on_lake(
        settings,
        "retention",
        "the lease holder applies the policy every retention_interval_seconds;"
        " ask a node now with POST /api/v1/retention/run?dry_run=true",
    ):
        return 2
    policy = retention.Policy.from_settings(settings)
    now = datetime.fromisoformat(args.now).astimezone(UTC) if args.now else None
    try:
        db = connect(settings.db_path)
    except StoreLockedError as exc:
        print(
            f"callscope retention: {exc}. A running server applies the policy itself every "
            "retention_interval_seconds; ask it now with POST /api/v1/retention/run?dry_run=true.",
            file=sys.stderr,
        )
        return 2
    try:
        report = retention.Runner(db, policy, batch_rows=settings.retention_batch_rows, now=now).run(
            dry_run=args.dry_run
        )
        retention.record(db, report, "cli")
    finally:
        db.close()
    body = report.as_dict()
    if args.compact and not args.dry_run:
        before, after = retention.compact_file(settings.db_path)
        body["file_bytes_before"], body["file_bytes_after"] = before, after
    print(json.dumps(body, indent=2))
    return 0


def cmd_delete_user(args: argparse.Namespace) -> int:
    from analytics import retention
    from core.store import StoreLockedError, connect

    settings = _settings(args)
    if _refused_on_lake(settings, "delete-user", "ask a node: DELETE /api/v1/users/<id>"):
        return 2
    try:
        db = connect(settings.db_path)
    except StoreLockedError as exc:
        print(f"callscope delete-user: {exc}. Ask the running server: DELETE /api/v1/users/<id>.", file=sys.stderr)
        return 2
    try:
        removed = retention.delete_user(db, args.user_id, args.project)
    finally:
        db.close()
    print(json.dumps({"user_id": args.user_id, "project": args.project, "removed": removed}, indent=2))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    print(json.dumps(_settings(args).describe(), indent=2, default=str))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from callscope.migrate_cli import run

    return run(args, _settings(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callscope",
        description="Observability and cost monitoring for LLM calls: point your OpenTelemetry exporter at it.",
    )
    parser.add_argument("--version", action="version", version=f"callscope {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the collector (OTLP HTTP + gRPC) and the API on one store")
    _add_setting_flags(p)
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("up", help="run everything: the collector and the dashboard")
    _add_setting_flags(p)
    p.add_argument(
        "--demo",
        action="store_true",
        help="fill an empty store with the shipped sample traffic (over OTLP), then keep a live trickle going",
    )
    p.set_defaults(fn=cmd_up)

    p = sub.add_parser("dashboard", help="run the Streamlit dashboard against a running server's read API")
    _add_setting_flags(p)
    p.set_defaults(fn=cmd_dashboard)

    p = sub.add_parser("export", help="export model calls of a stopped store, or of a running server (--server)")
    _add_setting_flags(p)
    p.add_argument("--format", choices=["jsonl", "csv", "parquet"], default="jsonl")
    p.add_argument("--output", "-o", help="file to write (default: standard output)")
    p.add_argument("--server", help="export from a running server's read API (e.g. http://127.0.0.1:4318)")
    p.add_argument("--from", dest="start", help="first start time, ISO 8601 (default: the beginning)")
    p.add_argument("--to", dest="end", help="end, exclusive, ISO 8601 (default: no end)")
    p.add_argument("--last", help="instead of --from: a duration before --to or now (15m, 24h, 7d, 4w)")
    p.add_argument(
        "--filter",
        action="append",
        metavar="DIM=VALUE",
        help="keep calls with this value (repeatable), e.g. model=gpt-4.1",
    )
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("reprice", help="re-price stored calls of a range with the current price book")
    _add_setting_flags(p)
    p.add_argument("--server", help="ask a running server (the way while ingest runs), e.g. http://127.0.0.1:4318")
    p.add_argument("--from", dest="start", required=True, help="first start time, ISO 8601")
    p.add_argument("--to", dest="end", help="end, exclusive, ISO 8601 (default: no end)")
    p.add_argument("--filter", action="append", metavar="DIM=VALUE", help="only calls with this value (repeatable)")
    p.set_defaults(fn=cmd_reprice, last=None)

    demo = sub.add_parser("demo", help="sample traffic: send it to a collector, or bulk-load a stopped store")
    demo_sub = demo.add_subparsers(dest="demo_command", required=True)
    p = demo_sub.add_parser(
        "bulk", help="write generated calls straight into a STOPPED store (benchmarks; skips the collector)"
    )
    _add_setting_flags(p)
    p.add_argument("--calls", type=int, required=True, help="number of calls to write")
    p.add_argument("--days", type=int, default=30, help="days of traffic, ending now (default 30)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--users", type=int, default=5000, help="distinct users (default 5000)")
    p.add_argument("--models", type=int, default=20, help="distinct models, at least the services' 17 (default 20)")
    p.set_defaults(fn=cmd_demo_bulk)
    p = demo_sub.add_parser("send", help="send generated traffic over OTLP/HTTP to a running collector")
    p.add_argument("--endpoint", help="collector base URL (default $OTEL_EXPORTER_OTLP_ENDPOINT or 127.0.0.1:4318)")
    p.add_argument("--dataset", action="store_true", help="send the shipped demo dataset, shifted to end now")
    p.add_argument("--calls", type=int, default=10_000, help="calls to backfill (default 10000; 0: none)")
    p.add_argument("--days", type=float, default=7, help="days of backfilled traffic, ending now (default 7)")
    p.add_argument("--live", action="store_true", help="then keep sending live traffic until stopped")
    p.add_argument(
        "--like-dataset",
        action="store_true",
        help="send nothing before the live traffic, which keeps the shipped dataset's calls per hour (as --dataset)",
    )
    p.add_argument(
        "--rate",
        type=float,
        dest="rate_given",
        help="live calls per minute at the daily peak (default: the dataset's own hourly rate with --dataset or "
        "--like-dataset, else 30)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--users", type=int, default=5000, help="distinct users (default 5000)")
    p.add_argument("--models", type=int, default=20, help="distinct models (default 20)")
    p.set_defaults(fn=cmd_demo_send)

    alerts = sub.add_parser("alerts", help="alert rules: check a rules file, replay rules over stored calls")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    p = alerts_sub.add_parser("check", help="validate rules files (exit 1 on any problem, as promtool check rules)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(fn=cmd_alerts_check)
    p = alerts_sub.add_parser(
        "test", help="replay a rules file over stored calls: when each rule would have fired, how many notifications"
    )
    _add_setting_flags(p)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--from", dest="start", required=True, help="first evaluation instant, ISO 8601 (UTC if no offset)")
    p.add_argument("--to", dest="end", help="last evaluation instant, ISO 8601 (default: now)")
    p.add_argument("--server", help="replay through a running server's read API (e.g. http://127.0.0.1:4318)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(fn=cmd_alerts_test)

    digest = sub.add_parser("digest", help="scheduled digests ([[digests]] in the config file)")
    digest_sub = digest.add_subparsers(dest="digest_command", required=True)
    p = digest_sub.add_parser(
        "send", help="send a digest of the period up to now, once (through the server if running)"
    )
    _add_setting_flags(p)
    p.add_argument("--now", action="store_true", required=True, help="the period ending now (the one-off mode)")
    p.add_argument("--name", action="append", help="digest to send (repeatable; default: every configured one)")
    p.add_argument("--server", help="queue it on this running server (default: this config's server, if running)")
    p.set_defaults(fn=cmd_digest_send)

    from callscope.users_cli import add_arguments as add_users_arguments

    p = sub.add_parser("users", help="dashboard users and their roles per project (on a stopped store)")
    add_users_arguments(p, _add_setting_flags)
    p.set_defaults(fn=cmd_users)
    p = sub.add_parser("retention", help="apply the retention policy to a stopped store (--dry-run: only count)")
    _add_setting_flags(p)
    p.add_argument("--dry-run", action="store_true", help="print what the policy would remove; remove nothing")
    p.add_argument("--compact", action="store_true", help="then rewrite the file to give the space back")
    p.add_argument("--now", help="apply the policy as of this ISO 8601 time (default: now)")
    p.set_defaults(fn=cmd_retention)

    p = sub.add_parser("delete-user", help="delete every call of a user id and its content (a stopped store)")
    _add_setting_flags(p)
    p.add_argument("user_id")
    p.add_argument("--project", help="only this project's calls (default: every project)")
    p.set_defaults(fn=cmd_delete_user)

    from callscope.migrate_cli import add_arguments as add_migrate_arguments

    p = sub.add_parser("migrate", help="copy a stopped embedded store into a lake (resumable, verified counts)")
    add_migrate_arguments(p, _add_setting_flags)
    p.set_defaults(fn=cmd_migrate)

    p = sub.add_parser("config", help="print the resolved settings (secrets masked)")
    _add_setting_flags(p)
    p.set_defaults(fn=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except SettingsError as exc:
        print(f"callscope: invalid setting: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
