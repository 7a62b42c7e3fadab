"""(Lake venv: duckdb 1.5.5.) A store written by a newer DuckDB than the one installed is refused with a message
that says what happened and where the conversion is, not a bare IO error. The fixture is a tiny file written by
duckdb 2.0.1 (storage version 999, which duckdb 1.5.5 cannot read), gzipped."""

from __future__ import annotations

import gzip

import duckdb
import pytest

from core.store import StoreVersionError, connect
from tests.helpers import FIXTURES

pytestmark = pytest.mark.lake


def test_a_store_of_a_newer_duckdb_is_refused_with_the_way_out(tmp_path):
    path = tmp_path / "callscope.duckdb"
    path.write_bytes(gzip.decompress((FIXTURES / "duckdb2-store.duckdb.gz").read_bytes()))
    with pytest.raises(StoreVersionError) as exc:
        connect(path)
    assert "newer DuckDB" in str(exc.value) and "Stores written by DuckDB 2.x" in str(exc.value)
    assert duckdb.__version__ in str(exc.value)
