"""Launching the dashboard: `streamlit run dashboard/app.py`, headless, local, telemetry off, pointed at the API.

`callscope dashboard` becomes the Streamlit process (`run_dashboard`); `callscope up` starts `callscope dashboard`
as a child next to the server. The read key travels in the environment (CALLSCOPE_API_KEY), never on the command
line, where every user of the machine could read it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import dashboard
from core.settings import Settings
from dashboard.api_client import ENV_KEY, ENV_URL

APP = Path(dashboard.__file__).resolve().parent / "app.py"


def streamlit_command(settings: Settings) -> list[str]:
    # callscope.dashboard_runner imports the app's modules before serving, then runs Streamlit's command line.
    return [
        sys.executable,
        "-m",
        "callscope.dashboard_runner",
        "run",
        str(APP),
        "--server.address",
        settings.dashboard_host,
        "--server.port",
        str(settings.dashboard_port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--browser.gatherUsageStats",
        "false",
        "--browser.serverAddress",
        settings.dashboard_host,
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "viewer",
        "--client.showErrorDetails",
        "none",
        "--server.enableStaticServing",
        "true",
        "--theme.base",
        "light",
    ]


def dashboard_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env[ENV_URL] = settings.read_api_url
    key = settings.dashboard_read_key
    if key:
        env[ENV_KEY] = key
    else:
        env.pop(ENV_KEY, None)
    # Streamlit reads these too; set them so no config file or default can turn usage statistics back on.
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    env["STREAMLIT_SERVER_HEADLESS"] = "true"
    return env


def dashboard_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.dashboard_host in ("0.0.0.0", "::", "") else settings.dashboard_host
    return f"http://{host}:{settings.dashboard_port}"


def run_dashboard(settings: Settings) -> int:
    """`callscope dashboard`: become the Streamlit process, so signals (Ctrl-C, SIGTERM) reach it directly."""
    command = streamlit_command(settings)
    os.execve(command[0], command, dashboard_env(settings))
