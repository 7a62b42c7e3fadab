"""core.store.transaction on the embedded file: several threads opening transactions on the one shared connection
at once (API routes, the dispatcher, sign-ins) each get their own cursor and commit every row; nothing is asked on
the shared connection itself (DuckDB's connection object is not safe to use from two threads at once)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from core.store import connect, transaction

THREADS = 4
EACH = 150


def test_concurrent_transactions_on_the_shared_connection_commit_every_row(tmp_path):
    db = connect(tmp_path / "callscope.duckdb")
    db.execute("CREATE TABLE t (thread INTEGER, i INTEGER)")
    # a reader keeps the shared connection itself busy meanwhile, as request handlers do
    reading = True

    def read() -> int:
        n = 0
        while reading:
            db.execute("SELECT count(*) FROM t").fetchone()
            n += 1
        return n

    def write(thread: int) -> None:
        for i in range(EACH):
            with transaction(db) as cur:
                cur.execute("INSERT INTO t VALUES (?, ?)", [thread, i])

    with ThreadPoolExecutor(THREADS + 1) as pool:
        reader = pool.submit(read)
        writers = [pool.submit(write, t) for t in range(THREADS)]
        for w in writers:
            w.result()  # raises what a writer raised
        reading = False
        assert reader.result() > 0
    counts = dict(db.execute("SELECT thread, count(DISTINCT i) FROM t GROUP BY thread").fetchall())
    assert counts == dict.fromkeys(range(THREADS), EACH)
    db.close()
