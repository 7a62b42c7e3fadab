"""A real PostgreSQL for the lake's catalog (tests and bench/lake.py): initdb + pg_ctl in a temporary folder (never a
system service).

PostgreSQL refuses to run as root; when the tests run as root (CI) the server runs as the `postgres` user that
Debian's package creates, through runuser.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg

from bench.stack import free_port


def pg_bin(name: str) -> str | None:
    """A PostgreSQL program from PATH, else from Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class Postgres:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "pgdata"
        self.port = free_port()
        self._as: list[str] = []

    def start(self) -> Postgres:
        initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        assert initdb and pg_ctl, "PostgreSQL's initdb/pg_ctl are not installed (.ci/run installs them)"
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run([initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        log = self.root / "postgres.log"
        self._run([pg_ctl, "-D", str(self.data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"])
        return self

    def stop(self) -> None:
        pg_ctl = pg_bin("pg_ctl")
        if pg_ctl and self.data.exists():
            subprocess.run([*self._as, pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"], capture_output=True)

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def new_database(self) -> str:
        """A fresh empty database (one lake each); returns its connection string."""
        name = "lake_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # a generated name: no user input
        return self.conninfo(name)

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run([*self._as, *argv], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stdout}\n{done.stderr}")


def lake_env(conninfo: str, data_path: Path, **extra: str) -> dict[str, str]:
    """The environment that makes `callscope serve` a node of this lake."""
    return {
        "CALLSCOPE_STORE": "lake",
        "CALLSCOPE_LAKE_CATALOG": conninfo,
        "CALLSCOPE_LAKE_DATA_PATH": str(data_path),
        **extra,
    }
