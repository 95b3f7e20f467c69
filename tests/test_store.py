"""The SQLite metrics store and downsample(): contract round trip, filters, semantics, safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

import capplan.store.sqlite as sqlite_store
from capplan.errors import ConfigError, DataContractError, StoreError
from capplan.core.frame import COLUMNS, SERIES_KEY, make_frame
from capplan.store import Store, downsample, open_store

T0 = pd.Timestamp("2026-03-01T00:00:00Z")


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values([*SERIES_KEY, "timestamp"], kind="stable").reset_index(drop=True)


def _frame(n: int = 50, *, start=T0, step="10s", value0: float = 0.0) -> pd.DataFrame:
    """Two gauges (with a NaN) and one counter from two sources, n timestamps each."""
    ts = pd.date_range(start, periods=n, freq=step)
    recs = []
    for i, t in enumerate(ts):
        recs.append({"timestamp": t, "source": "redis:cache", "metric": "redis_used_memory_bytes",
                     "labels": {"instance": "cache", "db": 0}, "value": value0 + 1000.0 + i,
                     "kind": "gauge", "unit": "bytes"})
        recs.append({"timestamp": t, "source": "postgres:app", "metric": "pg_connections",
                     "labels": {"instance": "app", "état": "actif"},
                     "value": np.nan if i == 3 else value0 + float(i % 7),
                     "kind": "gauge", "unit": "connections"})
        recs.append({"timestamp": t, "source": "redis:cache", "metric": "redis_commands_processed",
                     "labels": {}, "value": value0 + 10.0 * i, "kind": "counter",
                     "unit": "commands"})
    return make_frame(recs)


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "metrics.sqlite") as s:
        yield s


# ---- round trip -------------------------------------------------------------------------------

def test_round_trip_keeps_every_column_and_dtype(store):
    frame = _frame()
    assert store.append(frame) == len(frame)
    got = store.query()
    assert list(got.columns) == list(COLUMNS)
    assert str(got["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert got["value"].dtype == np.float64
    for col in ("source", "metric", "labels", "kind", "unit"):
        assert got[col].dtype == object
    pd.testing.assert_frame_equal(got, _sorted(frame))
    assert '{"instance":"app","état":"actif"}' in set(got["labels"])
    assert np.isnan(got.loc[got["metric"] == "pg_connections", "value"].iloc[3])


def _one(ts, value: float) -> pd.DataFrame:
    frame = pd.DataFrame({"timestamp": ts, "source": ["demo"], "metric": ["x_bytes"],
                          "labels": ["{}"], "value": [value], "kind": ["gauge"], "unit": ["bytes"]})
    for col in ("source", "metric", "labels", "kind", "unit"):
        frame[col] = frame[col].astype(object)
    return frame


def test_round_trip_normalises_timestamp_resolution(store):
    instant = pd.DatetimeIndex(["2026-03-01T00:00:00.123456Z"])
    store.append(_one(instant.as_unit("us"), 1.5))  # pandas 3 often builds microsecond columns
    got = store.query()
    assert str(got["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert got["timestamp"].iloc[0] == pd.Timestamp("2026-03-01T00:00:00.123456Z")
    store.append(_one(instant.as_unit("ns"), 2.5))  # the same instant at ns resolution replaces it
    assert store.query()["value"].tolist() == [2.5]
    with pytest.raises(DataContractError, match="UTC"):
        store.append(_one(instant.tz_convert("Europe/Paris"), 3.0))


def test_query_sorted_by_series_then_time(store):
    late = _frame(5, start=T0 + pd.Timedelta("1h"))
    early = _frame(5)
    store.append(late)
    store.append(early)
    got = store.query()
    assert got.equals(_sorted(got))
    assert got["timestamp"].is_monotonic_increasing is False  # several series
    one = got[got["metric"] == "redis_used_memory_bytes"]
    assert one["timestamp"].is_monotonic_increasing and len(one) == 10


def test_empty_store_and_empty_frame(store):
    assert store.append(make_frame([])) == 0
    got = store.query()
    assert list(got.columns) == list(COLUMNS) and len(got) == 0
    assert len(store.series()) == 0


# ---- filters ---------------------------------------------------------------------------------

def test_metric_source_and_label_subset_filters(store):
    store.append(_frame())
    assert set(store.query("pg_connections")["metric"]) == {"pg_connections"}
    both = store.query(["pg_connections", "redis_commands_processed"])
    assert set(both["metric"]) == {"pg_connections", "redis_commands_processed"}
    assert set(store.query(source="redis:cache")["metric"]) == \
        {"redis_used_memory_bytes", "redis_commands_processed"}
    sub = store.query(labels={"db": 0})  # int label value matches its string form
    assert set(sub["metric"]) == {"redis_used_memory_bytes"}
    assert len(store.query(labels={"instance": "cache", "db": "0"})) == 50
    assert len(store.query(labels={"instance": "nope"})) == 0
    assert len(store.query("no_such_metric")) == 0


def test_time_range_start_inclusive_end_exclusive_naive_is_utc(store):
    store.append(_frame(60, step="1min"))
    got = store.query("redis_used_memory_bytes", start="2026-03-01 00:10", end="2026-03-01 00:20")
    assert got["timestamp"].min() == pd.Timestamp("2026-03-01 00:10Z")
    assert got["timestamp"].max() == pd.Timestamp("2026-03-01 00:19Z")
    assert len(got) == 10
    paris = store.query("redis_used_memory_bytes", start=pd.Timestamp("2026-03-01 01:10", tz="Europe/Paris"))
    assert paris["timestamp"].min() == pd.Timestamp("2026-03-01 00:10Z")
    assert len(store.query(start="2026-03-01 00:30", end="2026-03-01 00:30")) == 0
    with pytest.raises(ConfigError, match="start"):
        store.query(start="not a time")


def test_time_range_across_many_hours_and_grains(store):
    store.append(_frame(600, step="1min"))
    got = store.query("redis_commands_processed", start=T0 + pd.Timedelta("13min"),
                      end=T0 + pd.Timedelta("358min"))
    assert list(got["value"]) == [10.0 * i for i in range(13, 358)]
    # whole-hour grains come from the rollup, with partial edge buckets from the samples
    raw = store.query(start=T0 + pd.Timedelta("13min"), end=T0 + pd.Timedelta("358min"))
    for grain in ("1h", "2h", "1D"):
        pd.testing.assert_frame_equal(
            store.query(start=T0 + pd.Timedelta("13min"), end=T0 + pd.Timedelta("358min"),
                        grain=grain), downsample(raw, grain), check_exact=False, rtol=1e-12)


# ---- append semantics --------------------------------------------------------------------------

def test_reappend_is_idempotent_and_repeats_replace(store):
    frame = _frame()
    store.append(frame)
    store.append(frame)
    pd.testing.assert_frame_equal(store.query(), _sorted(frame))
    changed = _frame(10, value0=5.0)
    store.append(changed)
    got = store.query("redis_used_memory_bytes")
    assert list(got["value"][:10]) == [1005.0 + i for i in range(10)]  # replaced
    assert list(got["value"][10:]) == [1000.0 + i for i in range(10, 50)]  # untouched
    assert len(store.query()) == len(frame)


def test_duplicate_rows_in_one_frame_last_wins(store):
    frame = _frame(3)
    dup = pd.concat([frame, frame.assign(value=frame["value"] + 1)], ignore_index=True)
    assert store.append(dup) == len(frame)
    got = store.query("redis_used_memory_bytes")
    assert list(got["value"]) == [1001.0, 1002.0, 1003.0]


def test_random_overlapping_appends_match_a_dict_model(tmp_path):
    rng = np.random.default_rng(7)
    model: dict[int, float] = {}
    with open_store(tmp_path / "m.sqlite") as s:
        for _ in range(40):
            secs = rng.integers(0, 4 * 3600, size=rng.integers(1, 60))
            vals = rng.normal(size=len(secs))
            for sec, v in zip(secs, vals):
                model[int(sec)] = float(v)  # later rows win
            s.append(make_frame(pd.DataFrame({
                "timestamp": T0 + pd.to_timedelta(secs, unit="s"), "source": "demo",
                "metric": "x_bytes", "labels": "{}", "value": vals, "kind": "gauge",
                "unit": "bytes"})))
        got = s.query()
        want = sorted(model.items())
        assert [int((t - T0).total_seconds()) for t in got["timestamp"]] == [k for k, _ in want]
        assert np.allclose(got["value"], [v for _, v in want])
        assert s.series()["n"].tolist() == [len(model)]
        # the hourly rollup stayed exact through replacing and out-of-order appends
        pd.testing.assert_frame_equal(s.query(grain="1h"), downsample(got, "1h"),
                                      check_exact=False, rtol=1e-9)
        pd.testing.assert_frame_equal(s.query(grain="2h", start=T0 + pd.Timedelta("7min")),
                                      downsample(s.query(start=T0 + pd.Timedelta("7min")), "2h"),
                                      check_exact=False, rtol=1e-9)


def test_small_appends_are_rows_and_sql_readable(store):
    for k in range(30):
        store.append(_frame(1, start=T0 + pd.Timedelta(seconds=10 * k)))
    assert store._conn.execute("SELECT count(*) FROM sample_rows").fetchone()[0] == 90
    assert store.series()["n"].tolist() == [30, 30, 30]
    row = store._conn.execute(
        "SELECT ts, source, labels, value, kind, unit, ts_ns FROM samples WHERE metric = "
        "'redis_used_memory_bytes' ORDER BY ts_ns LIMIT 1").fetchone()
    assert row == ("2026-03-01T00:00:00.000Z", "redis:cache", '{"db":"0","instance":"cache"}',
                   1000.0, "gauge", "bytes", T0.value)
    ser = store._conn.execute("SELECT metric, n, first_ns, last_ns FROM series ORDER BY metric").fetchall()
    assert ser[0] == ("pg_connections", 30, T0.value, T0.value + 290 * 10**9)


def test_kind_or_unit_clash_with_stored_series_is_refused(store):
    store.append(_frame(3))
    clash = _frame(3).assign(unit="count")
    with pytest.raises(DataContractError, match="stored as gauge/bytes"):
        store.append(clash)
    assert len(store.query()) == 9  # nothing of the refused frame was written


def test_bad_frame_is_refused_with_contract_error(store):
    bad = _frame(3).assign(kind="level")
    with pytest.raises(DataContractError, match="kind"):
        store.append(bad)


def test_series_listing(store):
    store.append(_frame(20))
    ser = store.series()
    assert list(ser.columns) == ["source", "metric", "labels", "kind", "unit", "n", "first", "last"]
    row = ser[ser["metric"] == "redis_commands_processed"].iloc[0]
    assert (row["kind"], row["unit"], row["n"], row["labels"]) == ("counter", "commands", 20, "{}")
    assert row["first"] == T0 and row["last"] == T0 + pd.Timedelta("190s")
    assert str(ser["first"].dtype) == "datetime64[ns, UTC]"


# ---- downsampling ------------------------------------------------------------------------------

def _ds_input() -> pd.DataFrame:
    ts = ["2026-03-01T00:00:00Z", "2026-03-01T00:20:00Z", "2026-03-01T00:59:59Z",
          "2026-03-01T01:00:00Z", "2026-03-01T01:30:00Z", "2026-03-01T03:10:00Z"]
    gauge = [1.0, np.nan, 5.0, 10.0, 20.0, 7.0]
    counter = [100.0, 900.0, 5.0, 20.0, 30.0, 40.0]  # reset between 00:20 and 00:59:59
    recs = [{"timestamp": t, "source": "demo", "metric": "g_bytes", "labels": "{}", "value": g,
             "kind": "gauge", "unit": "bytes"} for t, g in zip(ts, gauge)]
    recs += [{"timestamp": t, "source": "demo", "metric": "c_total", "labels": "{}", "value": c,
              "kind": "counter", "unit": "requests"} for t, c in zip(ts, counter)]
    return make_frame(recs[::-1])  # unsorted on purpose


def test_downsample_gauges_mean_counters_last_raw_left_labelled():
    out = downsample(_ds_input(), "1h")
    assert list(out.columns) == list(COLUMNS)
    c = out[out["metric"] == "c_total"]
    g = out[out["metric"] == "g_bytes"]
    hours = [pd.Timestamp(x) for x in ("2026-03-01T00:00Z", "2026-03-01T01:00Z", "2026-03-01T03:00Z")]
    assert list(c["timestamp"]) == hours and list(g["timestamp"]) == hours  # empty 02:00 omitted
    assert list(c["value"]) == [5.0, 30.0, 40.0]  # reset inside the bucket: raw last value kept
    assert list(g["value"]) == [3.0, 15.0, 7.0]  # NaN skipped by the mean
    assert set(c["kind"]) == {"counter"} and set(g["unit"]) == {"bytes"}
    assert out.equals(_sorted(out))


def test_downsample_all_nan_bucket_is_nan_and_grid_is_utc_aligned():
    f = make_frame([{"timestamp": "2026-03-01T00:07:00+05:00", "source": "demo", "metric": "g_bytes",
                     "labels": "{}", "value": np.nan, "kind": "gauge", "unit": "bytes"}])
    out = downsample(f, "15min")
    assert out["timestamp"].iloc[0] == pd.Timestamp("2026-02-28T19:00Z")
    assert np.isnan(out["value"].iloc[0])


def test_downsample_is_pure_and_checks_grain():
    f = _ds_input()
    before = f.copy()
    downsample(f, "30min")
    pd.testing.assert_frame_equal(f, before)
    with pytest.raises(ConfigError, match="grain"):
        downsample(f, "1 fortnight-ish")
    with pytest.raises(ConfigError, match="positive"):
        downsample(f, "0s")


def test_query_with_grain_equals_downsample_of_query(store):
    store.append(_ds_input())
    store.append(_frame(200, step="37s"))
    pd.testing.assert_frame_equal(store.query(grain="5min"), downsample(store.query(), "5min"))
    got = store.query("c_total", grain="1h", start="2026-03-01T00:30")
    assert list(got["value"]) == [5.0, 30.0, 40.0]


# ---- schema versions and foreign files ---------------------------------------------------------

def test_new_store_has_current_schema_and_wal(tmp_path):
    path = tmp_path / "deep" / "er" / "s.sqlite"
    with open_store(str(path)) as s:
        assert isinstance(s, Store)
        assert s.schema_version == sqlite_store.SCHEMA_VERSION
        assert str(path) in repr(s)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == sqlite_store.APPLICATION_ID
    conn.close()


def test_older_store_is_migrated_and_keeps_its_data(tmp_path):
    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path)
    for stmt in sqlite_store.MIGRATIONS[1][1]:
        conn.execute(stmt)
    conn.execute("INSERT INTO series VALUES (1, 'demo', 'x_bytes', '{}', 'gauge', 'bytes')")
    ts = np.array([T0.value, T0.value + 10**9], dtype="<i8")
    conn.execute("INSERT INTO blocks VALUES (1, ?, ?, 2, ?, ?)",
                 (int(ts[0]), int(ts[1]), ts.tobytes(), np.array([1.0, 2.0], "<f8").tobytes()))
    conn.execute(f"PRAGMA application_id = {sqlite_store.APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with open_store(path) as s:
        assert s.schema_version == sqlite_store.SCHEMA_VERSION > 1
        assert list(s.query("x_bytes")["value"]) == [1.0, 2.0]
    conn = sqlite3.connect(path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"sample_rows", "rollup_1h", "samples", "series"} <= names and "blocks" not in names
    assert conn.execute("SELECT value FROM samples").fetchall() == [(1.0,), (2.0,)]
    conn.close()


def test_store_from_newer_capplan_is_refused(tmp_path):
    path = tmp_path / "future.sqlite"
    with open_store(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer capplan") as err:
        open_store(path)
    assert str(path) in str(err.value) and "upgrade" in err.value.hint


def test_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.close()
    with pytest.raises(StoreError, match="not a capplan store") as err:
        open_store(path)
    assert str(path) in str(err.value)


def test_corrupt_file_is_refused_naming_the_path(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"this is a text file, not a database\n" * 100)
    with pytest.raises(StoreError, match="not a capplan store") as err:
        open_store(path)
    assert str(path) in str(err.value)


def test_damaged_database_pages_give_store_error(tmp_path):
    path = tmp_path / "damaged.sqlite"
    with open_store(path) as s:
        s.append(_frame(2000))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    data = bytearray(path.read_bytes())
    data[4096:len(data)] = b"\xff" * (len(data) - 4096)  # wipe every page after the header page
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as err:
        with open_store(path) as s:
            s.query()
    assert str(path) in str(err.value)


# ---- write errors ------------------------------------------------------------------------------

def test_parent_that_is_a_file_gives_store_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the directory") as err:
        open_store(blocker / "sub" / "s.sqlite")
    assert str(blocker) in str(err.value) and err.value.hint


def test_unwritable_location_gives_store_error_with_hint():
    path = "/proc/capplan-test/metrics.sqlite"  # /proc refuses new files, even for root
    with pytest.raises(StoreError) as err:
        open_store(path)
    assert path in str(err.value) and "writable" in err.value.hint


def test_directory_target_gives_store_error(tmp_path):
    with pytest.raises(StoreError, match="is a directory"):
        open_store(tmp_path)


def test_disk_full_gives_store_error_with_hint(store):
    store.append(_frame(10))
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: 'disk full'
    with pytest.raises(StoreError, match="full") as err:
        store.append(_frame(20000, start=T0 + pd.Timedelta("30D")))
    assert str(store.path) in str(err.value) and "free space" in err.value.hint
    assert len(store.query()) == 30  # the failed append left nothing behind


def test_closed_store_and_empty_target(tmp_path):
    s = open_store(tmp_path / "c.sqlite")
    s.close()
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.query()
    with pytest.raises(ConfigError):
        open_store("  ")


def test_unset_env_var_names_the_variable(monkeypatch):
    monkeypatch.delenv("CAPPLAN_NO_SUCH_DSN", raising=False)
    with pytest.raises(ConfigError, match="CAPPLAN_NO_SUCH_DSN"):
        open_store("env:CAPPLAN_NO_SUCH_DSN")


# ---- processes: concurrency and kill -9 --------------------------------------------------------

_WRITER = textwrap.dedent("""
    import os, sys, time
    import numpy as np, pandas as pd
    from capplan.store import open_store
    path, who, batches, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    go, progress = sys.argv[5], sys.argv[6]
    while not os.path.exists(go):
        time.sleep(0.005)
    store = open_store(path)
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    labels = np.array(['{"i":"%d"}' % i for i in range(20)], dtype=object)
    b = 0
    while batches < 0 or b < batches:
        # writers interleave timestamps (who = 0, 1) in the same 20 series
        ts = t0 + pd.to_timedelta((np.arange(per) + b * per) * 2 + who, unit="s")
        n = len(ts)
        df = pd.DataFrame({"timestamp": np.tile(ts.as_unit("ns"), 20),
                           "source": np.full(20 * n, "demo", dtype=object),
                           "metric": np.full(20 * n, "x_bytes", dtype=object),
                           "labels": np.repeat(labels, n),
                           "value": np.full(20 * n, float(b)),
                           "kind": np.full(20 * n, "gauge", dtype=object),
                           "unit": np.full(20 * n, "bytes", dtype=object)})
        store.append(df)
        b += 1
        with open(progress, "w") as fh:
            fh.write(str(b))
    store.close()
""")


@pytest.fixture
def writer_script(tmp_path):
    p = tmp_path / "writer.py"
    p.write_text(_WRITER)
    return p


def test_two_writer_processes_lose_nothing(tmp_path, writer_script, python_exe):
    path, go = tmp_path / "shared.sqlite", tmp_path / "go"
    procs = [subprocess.Popen([python_exe, str(writer_script), str(path), str(who), "25", "200",
                               str(go), str(tmp_path / f"p{who}")], stderr=subprocess.PIPE)
             for who in (0, 1)]
    go.write_text("")
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    with open_store(path) as s:
        got = s.query("x_bytes")
        assert len(got) == 2 * 25 * 200 * 20
        assert not got.duplicated(["labels", "timestamp"]).any()
        assert s.series()["n"].tolist() == [2 * 25 * 200] * 20


def test_kill_9_mid_append_leaves_store_consistent(tmp_path, writer_script, python_exe):
    path, go, progress = tmp_path / "killed.sqlite", tmp_path / "go", tmp_path / "p0"
    go.write_text("")
    proc = subprocess.Popen([python_exe, str(writer_script), str(path), "0", "-1", "3000",
                             str(go), str(progress)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (progress.exists() and progress.read_text().strip() not in ("", "0", "1", "2")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "writer made no progress"
            time.sleep(0.01)
        time.sleep(0.037)  # land somewhere inside a later append
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with open_store(path) as s:
        ser = s.series()
        n = ser["n"].tolist()
        assert len(set(n)) == 1 and n[0] % 3000 == 0 and n[0] >= 3 * 3000  # whole appends only
        got = s.query("x_bytes")
        assert got.groupby("timestamp").size().eq(20).all()
        s.append(_frame(2))  # still writable


def test_a_conninfo_dsn_is_never_taken_for_a_file_name(tmp_path, monkeypatch):
    """Issue 10: a DSN given as a store must not create a SQLite file named after it."""
    from capplan.errors import ConfigError
    from capplan.store import open_store

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="env:VARNAME"):
        open_store("host=127.0.0.1 port=5432 dbname=test password=Sekr1tValue")
    assert list(tmp_path.iterdir()) == []
