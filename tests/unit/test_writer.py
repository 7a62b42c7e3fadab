"""The single writer on a real DuckDB file: re-sent rows are stored once, whichever insert path stores them."""

from __future__ import annotations

from collector.decode import Encoding, Signal
from collector.normalize import ContentOptions, SpanNormalizer
from collector.prepare import Preparer
from collector.pricing import Pricer
from collector.selfmetrics import CollectorStats
from collector.writer import WriteJob, Writer
from core.store import connect
from tests.load import genai_request


def _job(preparer: Preparer, body: bytes) -> WriteJob:
    prepared = preparer.prepare_raw(Signal.TRACES, Encoding.PROTOBUF, None, body, "default")
    return WriteJob(calls=prepared.calls, spans=prepared.spans)


def _commit(writer: Writer, job: WriteJob) -> None:
    writer.submit(job).result(timeout=30)


def test_resent_rows_are_stored_once_by_either_insert_path(tmp_path):
    db = connect(tmp_path / "s.duckdb")
    stats = CollectorStats()
    # Remember only 10 recent calls, so an older re-send is found by the primary key, not by the memory.
    writer = Writer(
        db,
        stats,
        queue_max_rows=100_000,
        batch_max_rows=50_000,
        batch_max_wait_s=0.001,
        retry_after_s=1,
        recent_call_memory=10,
    )
    writer.start()
    preparer = Preparer(SpanNormalizer(Pricer()), ContentOptions(), 20 * 2**20)
    first, _ = genai_request(1, 100)
    second, _ = genai_request(2, 100)
    try:
        _commit(writer, _job(preparer, first))
        _commit(writer, _job(preparer, second))
        _commit(writer, _job(preparer, second))  # its last calls are remembered: straight to OR IGNORE
        assert stats.get("callscope_commit_conflicts_total") == 0
        _commit(writer, _job(preparer, first))  # older than the memory: plain INSERT fails, OR IGNORE redoes it
        assert stats.get("callscope_commit_conflicts_total") == 1
        fresh, _ = genai_request(3, 50)
        _commit(writer, _job(preparer, fresh))
    finally:
        writer.close()
    assert db.execute("SELECT count(*), count(DISTINCT span_id) FROM calls").fetchone() == (250, 250)
    db.close()


def test_a_rejected_transaction_rolls_back_and_the_next_one_commits(tmp_path):
    db = connect(tmp_path / "s.duckdb")
    writer = Writer(
        db, CollectorStats(), queue_max_rows=100_000, batch_max_rows=50_000, batch_max_wait_s=0.001, retry_after_s=1
    )
    writer.start()
    preparer = Preparer(SpanNormalizer(Pricer()), ContentOptions(), 20 * 2**20)
    try:
        job = _job(preparer, genai_request(4, 10)[0])
        bad = job.calls.set_column(job.calls.schema.get_field_index("pricing"), "pricing", [[None] * 10])
        future = writer.submit(WriteJob(calls=bad))  # NOT NULL violated: fails on both insert paths
        try:
            future.result(timeout=30)
            raise AssertionError("a NOT NULL violation must fail the request")
        except Exception as exc:
            assert "NOT NULL" in str(exc) or "constraint" in str(exc).lower()
        _commit(writer, _job(preparer, genai_request(5, 10)[0]))
    finally:
        writer.close()
    assert db.execute("SELECT count(*) FROM calls").fetchone() == (10,)
    db.close()
