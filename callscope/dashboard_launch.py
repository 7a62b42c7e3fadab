"""Launching the dashboard: `streamlit run dashboard/app.py`, headless, local, telemetry off, pointed at the API.

`callscope dashboard` becomes the Streamlit process (`run_dashboard`); `callscope up` starts `callscope dashboard`
as a child next to the server. The read key travels in the environment (CALLSCOPE_API_KEY), never on the command
line, where every user of the machine could read it.

Sign-in: with oidc_issuer and oidc_client_id set, the launcher writes Streamlit's [auth] section (owner-only file
under the data directory) so `st.login` signs users in through the identity provider and exposes the ID token,
which the dashboard forwards to the API. A dashboard on a non-loopback address gets no key at all: everyone signs in
(dashboard/auth.py).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

import dashboard
from callscope.server import is_loopback
from core.settings import Settings
from dashboard.api_client import ENV_KEY, ENV_URL
from dashboard.auth import ENV_EXPOSED, ENV_OIDC

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
        *(["--secrets.files", str(auth_secrets_path(settings))] if oidc_configured(settings) else []),
    ]


def oidc_configured(settings: Settings) -> bool:
    return bool(settings.oidc_issuer and settings.oidc_client_id)


def auth_secrets_path(settings: Settings) -> Path:
    return settings.data_dir / "dashboard" / "secrets.toml"


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_auth_secrets(settings: Settings) -> Path:
    """Streamlit's [auth] section from callscope's settings, in a file only its owner can read."""
    path = auth_secrets_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    issuer = (settings.oidc_issuer or "").rstrip("/")
    values = {
        "redirect_uri": settings.dashboard_link + "/oauth2callback",
        "cookie_secret": settings.oidc_cookie_secret or secrets.token_urlsafe(32),
        "client_id": settings.oidc_client_id or "",
        "client_secret": settings.oidc_client_secret or "",
        "server_metadata_url": issuer + "/.well-known/openid-configuration",
    }
    lines = ["[auth]", *(f"{k} = {_toml_string(v)}" for k, v in values.items()), 'expose_tokens = ["id"]', ""]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines))
    os.chmod(path, 0o600)
    return path


def dashboard_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env[ENV_URL] = settings.read_api_url
    exposed = not is_loopback(settings.dashboard_host)
    key = settings.dashboard_read_key
    if key and not exposed:
        env[ENV_KEY] = key
    else:
        env.pop(ENV_KEY, None)
    env[ENV_EXPOSED] = "1" if exposed else "0"
    env[ENV_OIDC] = "1" if oidc_configured(settings) else "0"
    # Streamlit reads these too; set them so no config file or default can turn usage statistics back on.
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    env["STREAMLIT_SERVER_HEADLESS"] = "true"
    return env


def dashboard_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.dashboard_host in ("0.0.0.0", "::", "") else settings.dashboard_host
    return f"http://{host}:{settings.dashboard_port}"


def run_dashboard(settings: Settings) -> int:
    """`callscope dashboard`: become the Streamlit process, so signals (Ctrl-C, SIGTERM) reach it directly."""
    if oidc_configured(settings):
        write_auth_secrets(settings)
    command = streamlit_command(settings)
    os.execve(command[0], command, dashboard_env(settings))
