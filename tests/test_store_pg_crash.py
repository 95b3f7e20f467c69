"""Crash safety of the PostgreSQL team store against the real server.

A writer process appends large frames (one binary COPY each) in a loop.  The test kills it with
SIGKILL while its COPY is running, or terminates its backend (pg_terminate_backend) while its
transaction holds written rows, and then checks that no part of the interrupted append is
visible, that the rollup still agrees with the samples, and that the store takes new appends.
The same holds for a scrape-sized append (one round trip) whose backend is terminated inside it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from capplan.core.frame import labels_key, make_frame
from capplan.errors import StoreError
from capplan.store import downsample, open_store

ENV = "CAPPLAN_TEST_CRASH_DSN"
N_TS, N_SERIES = 10_000, 20  # samples per append: 200,000

_WRITER = textwrap.dedent("""
    import sys
    import numpy as np, pandas as pd
    from capplan.errors import StoreError
    from capplan.store import open_store
    schema, pidfile, progress = sys.argv[1], sys.argv[2], sys.argv[3]
    store = open_store("env:%(env)s", schema=schema)
    with open(pidfile, "w") as fh:
        fh.write(str(store._conn.info.backend_pid))
    t0 = pd.Timestamp("2026-05-01", tz="UTC")
    labels = np.array(['{"i":"%%d"}' %% i for i in range(%(ns)d)], dtype=object)
    b = 0
    try:
        while True:
            ts = (t0 + pd.to_timedelta(np.arange(%(nt)d) + b * %(nt)d, unit="s")).as_unit("ns")
            n = %(ns)d * %(nt)d
            store.append(pd.DataFrame({
                "timestamp": np.tile(ts, %(ns)d), "source": np.full(n, "demo", dtype=object),
                "metric": np.full(n, "x_bytes", dtype=object), "labels": np.repeat(labels, %(nt)d),
                "value": np.full(n, float(b)), "kind": np.full(n, "gauge", dtype=object),
                "unit": np.full(n, "bytes", dtype=object)}))
            b += 1
            with open(progress, "w") as fh:
                fh.write(str(b))
    except StoreError as exc:
        print(f"StoreError: {exc} (hint: {exc.hint})", file=sys.stderr)
        sys.exit(3)
""") % {"env": ENV, "ns": N_SERIES, "nt": N_TS}


@pytest.fixture
def schema(pg_dsn, monkeypatch):
    monkeypatch.setenv(ENV, pg_dsn)
    name = f"capplan_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def _start_writer(tmp_path, schema, python_exe):
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    pidfile, progress = tmp_path / "backend.pid", tmp_path / "progress"
    proc = subprocess.Popen([python_exe, str(script), schema, str(pidfile), str(progress)],
                            stderr=subprocess.PIPE, text=True)
    return proc, pidfile, progress


def _wait_until(conn, proc, progress, pidfile, condition: str, what: str) -> tuple[int, int]:
    """Wait for one committed append, then until ``condition`` (SQL on the writer's backend
    pid) holds; returns (backend pid, appends committed so far)."""
    deadline = time.monotonic() + 90
    while not (progress.exists() and progress.read_text().strip() not in ("", "0")):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the writer committed nothing"
        time.sleep(0.01)
    pid = int(pidfile.read_text())
    while True:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, f"never saw the writer {what}"
        if conn.execute(condition, (pid,)).fetchone()[0]:
            return pid, int(progress.read_text())
        time.sleep(0.002)


def _wait_gone(conn, pid: int) -> None:
    deadline = time.monotonic() + 60
    while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]:
        assert time.monotonic() < deadline, f"backend {pid} outlived its client"
        time.sleep(0.02)


def _check_whole_appends_and_usable(pg_dsn, schema, committed_before: int) -> None:
    ident = sql.Identifier(schema)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        n = conn.execute(sql.SQL("SELECT count(*) FROM {}.samples").format(ident)).fetchone()[0]
        per_batch = conn.execute(sql.SQL(
            "SELECT value, count(*) FROM {}.samples GROUP BY value ORDER BY value").format(ident)
        ).fetchall()
    # whole appends only: every committed batch complete, nothing of the interrupted one
    assert n % (N_TS * N_SERIES) == 0 and n // (N_TS * N_SERIES) in (committed_before,
                                                                    committed_before + 1)
    assert per_batch == [(float(b), N_TS * N_SERIES) for b in range(n // (N_TS * N_SERIES))]
    with open_store(f"env:{ENV}", schema=schema) as s:
        ser = s.series()
        assert ser["n"].tolist() == [n // N_SERIES] * N_SERIES  # the rollup agrees
        last = ser["last"].max()
        hours = s.query(start=last - pd.Timedelta("3h"), grain="1h")
        pd.testing.assert_frame_equal(hours, downsample(s.query(start=last - pd.Timedelta("3h")),
                                                        "1h"), check_exact=False, rtol=1e-12)
        more = s.query(start=last).assign(timestamp=lambda d: d["timestamp"] + pd.Timedelta("1s"))
        assert s.append(more) == N_SERIES  # still writable, the series locks were released
        assert s.series()["n"].tolist() == [n // N_SERIES + 1] * N_SERIES


def test_kill_9_of_the_writer_mid_copy_leaves_no_partial_append(pg_dsn, schema, tmp_path,
                                                                 python_exe):
    proc, pidfile, progress = _start_writer(tmp_path, schema, python_exe)
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            pid, committed = _wait_until(
                conn, proc, progress, pidfile,
                "SELECT count(*) FROM pg_stat_progress_copy WHERE pid = %s AND tuples_processed > 0",
                "inside a COPY")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            _wait_gone(conn, pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    _check_whole_appends_and_usable(pg_dsn, schema, committed)


def test_backend_terminated_mid_transaction_leaves_no_partial_append(pg_dsn, schema, tmp_path,
                                                                     python_exe):
    proc, pidfile, progress = _start_writer(tmp_path, schema, python_exe)
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            # the COPY is done, the transaction (holding its rows) is still open: the client
            # is computing the rollup it writes next
            pid, committed = _wait_until(
                conn, proc, progress, pidfile,
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND backend_xid IS NOT NULL"
                " AND state = 'idle in transaction' AND query LIKE 'COPY%%'",
                "between statements of a writing transaction")
            assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
            _wait_gone(conn, pid)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, err  # a typed StoreError, not a traceback
    assert "StoreError" in err and "Traceback" not in err and "reopen the store" in err
    _check_whole_appends_and_usable(pg_dsn, schema, committed)


def _scrape(k: int):
    t = pd.Timestamp("2026-05-01", tz="UTC") + pd.Timedelta(seconds=10 * k)
    return make_frame([{"timestamp": t, "source": "demo", "metric": "x_bytes",
                        "labels": {"i": str(i)}, "value": float(k), "kind": "gauge",
                        "unit": "bytes"} for i in range(N_SERIES)])


def test_backend_terminated_inside_a_one_round_trip_append_leaves_nothing(pg_dsn, schema):
    ident = sql.Identifier(schema)
    with open_store(f"env:{ENV}", schema=schema) as store:
        store.append(_scrape(0))  # creates the series: the next scrape is one round trip
        pid = store._conn.info.backend_pid
        # the blocker is closed first: if the test fails, its rollback frees the writer thread
        # before the pool waits for it
        with ThreadPoolExecutor(1) as pool, psycopg.connect(pg_dsn) as blocker:
            # an uncommitted row with the key of one of the scrape's samples: the writer waits
            # for it inside its write statement, holding the series locks (and what it wrote)
            blocker.execute(sql.SQL(
                "INSERT INTO {s}.sample_rows SELECT id, %s, -1 FROM {s}.series_key WHERE labels = %s"
            ).format(s=ident), (_scrape(1)["timestamp"].iloc[0], labels_key({"i": "7"})))
            writing = pool.submit(store.append, _scrape(1))
            deadline = time.monotonic() + 60
            while not blocker.execute("SELECT pg_backend_pid() = ANY(pg_blocking_pids(%s))",
                                      (pid,)).fetchone()[0]:
                assert not writing.done(), writing.result()
                assert time.monotonic() < deadline, "the writer never waited inside its append"
                time.sleep(0.005)
            assert blocker.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
            with pytest.raises(StoreError) as err:
                writing.result(timeout=60)
            blocker.rollback()
        assert "reopen the store" in err.value.hint
    with open_store(f"env:{ENV}", schema=schema) as store:
        got = store.query()
        assert len(got) == N_SERIES and set(got["value"]) == {0.0}  # nothing of scrape 1
        assert store.series()["n"].tolist() == [1] * N_SERIES  # the rollup agrees
        pd.testing.assert_frame_equal(store.query(grain="1h"), downsample(got, "1h"))
        assert store.append(_scrape(1)) == N_SERIES and store.append(_scrape(2)) == N_SERIES
        assert store.series()["n"].tolist() == [3] * N_SERIES
        assert store.query(grain="1h")["value"].tolist() == [1.0] * N_SERIES
