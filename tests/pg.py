"""The lake tests' PostgreSQL and node environment (bench/pg.py, shared with bench/lake.py)."""

from bench.pg import Postgres, lake_env, pg_bin

__all__ = ["Postgres", "lake_env", "pg_bin"]
