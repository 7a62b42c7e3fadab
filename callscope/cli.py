"""The `callscope` command: serve, up, export, config."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from callscope import __version__
from callscope.settings import SETTINGS, Settings, SettingsError, load_settings

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
            group.add_argument(
                s.flag,
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


def cmd_serve(args: argparse.Namespace) -> int:
    from callscope.server import StartupError, serve
    from callscope.store import StoreLockedError

    settings = _settings(args)
    _setup_logging(settings.log_level)
    try:
        asyncio.run(serve(settings))
    except (StartupError, StoreLockedError) as exc:
        print(f"callscope: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from dashboard.launch import dashboard_url, start_dashboard, stop_dashboard

    settings = _settings(args)
    base = f"http://{settings.host}:{settings.otlp_http_port}"
    print(
        f"callscope {__version__} is starting with the store in {settings.data_dir}\n"
        f"  dashboard  {dashboard_url(settings)}\n"
        f"  OTLP/HTTP  {base}   (gRPC on {settings.host}:{settings.otlp_grpc_port})\n"
        f"  health     {base}/healthz   metrics {base}/metrics\n\n"
        "Point your application at it:\n"
        f"  export OTEL_EXPORTER_OTLP_ENDPOINT={base}\n"
        "  export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf\n\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    dashboard = start_dashboard(settings)
    try:
        return cmd_serve(args)
    finally:
        stop_dashboard(dashboard)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from dashboard.launch import dashboard_url, run_dashboard

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
    from analytics.export import ExportFormat, export_from_server, export_from_store
    from analytics.timewin import QueryError
    from callscope.store import StoreLockedError

    settings = _settings(args)
    fmt = ExportFormat(args.format)
    window = _export_window(args)
    out_path = Path(args.output) if args.output and args.output != "-" else None
    try:
        with out_path.open("wb") if out_path else contextlib.nullcontext(sys.stdout.buffer) as out:
            if args.server:
                key = os.environ.get("CALLSCOPE_READ_KEY") or next(iter(sorted(settings.read_keys)), None)
                n = export_from_server(args.server, fmt, window, out, read_key=key)
            else:
                n = export_from_store(settings.db_path, fmt, window, out)
    except (FileNotFoundError, StoreLockedError, QueryError, ConnectionError) as exc:
        print(f"callscope export: {exc}", file=sys.stderr)
        return 2
    print(f"exported {n} calls", file=sys.stderr)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    print(json.dumps(_settings(args).describe(), indent=2, default=str))
    return 0


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
