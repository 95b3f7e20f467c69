"""The PostgreSQL team store against the real server, each test in its own schema (dropped after)."""

from __future__ import annotations

import contextlib
import subprocess
import textwrap
import uuid

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import pq, sql

import capplan.store.postgres as pg_store
from capplan.errors import ConfigError, DataContractError, StoreError
from capplan.core.frame import COLUMNS, SERIES_KEY, labels_key, make_frame
from capplan.store import Store, downsample, open_store

T0 = pd.Timestamp("2026-03-01T00:00:00Z")
ENV = "CAPPLAN_TEST_STORE_DSN"


def _sorted(df):
    return df.sort_values([*SERIES_KEY, "timestamp"], kind="stable").reset_index(drop=True)


def _frame(n=50, *, start=T0, step="10s", value0=0.0):
    ts = pd.date_range(start, periods=n, freq=step)
    recs = []
    for i, t in enumerate(ts):
        recs.append({"timestamp": t, "source": "redis:cache", "metric": "redis_used_memory_bytes",
                     "labels": {"instance": "cache", "db": 0}, "value": value0 + 1000.0 + i,
                     "kind": "gauge", "unit": "bytes"})
        recs.append({"timestamp": t, "source": "postgres:app", "metric": "pg_connections",
                     "labels": {"instance": "app"}, "value": np.nan if i == 3 else value0 + i % 7,
                     "kind": "gauge", "unit": "connections"})
        recs.append({"timestamp": t, "source": "redis:cache", "metric": "redis_commands_processed",
                     "labels": {}, "value": value0 + 10.0 * i, "kind": "counter", "unit": "commands"})
    return make_frame(recs)


@pytest.fixture
def schema(pg_dsn, monkeypatch):
    """A unique schema name, dropped after the test; the DSN reaches the store via env:VAR."""
    monkeypatch.setenv(ENV, pg_dsn)
    name = f"capplan_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def store(schema):
    with open_store(f"env:{ENV}", schema=schema) as s:
        yield s


def test_round_trip_filters_and_series(store, schema):
    assert isinstance(store, Store) and store.schema_version == pg_store.SCHEMA_VERSION
    frame = _frame()
    assert store.append(frame) == len(frame)
    got = store.query()
    assert list(got.columns) == list(COLUMNS)
    pd.testing.assert_frame_equal(got, _sorted(frame))
    assert set(store.query(labels={"db": 0})["metric"]) == {"redis_used_memory_bytes"}
    assert set(store.query(source="postgres:app")["metric"]) == {"pg_connections"}
    win = store.query("redis_commands_processed", start="2026-03-01 00:01", end="2026-03-01 00:02")
    assert list(win["value"]) == [60.0, 70.0, 80.0, 90.0, 100.0, 110.0]
    ser = store.series()
    assert ser["n"].tolist() == [50, 50, 50]
    assert (ser["first"] == T0).all()
    assert schema in repr(store) and f"env:{ENV}" in repr(store)


def test_reappend_idempotent_replace_and_tail_merge(store, schema, pg_dsn):
    frame = _frame()
    store.append(frame)
    store.append(frame)
    store.append(_frame(10, value0=5.0))
    got = store.query("redis_used_memory_bytes")
    assert len(got) == 50 and got["value"].iloc[0] == 1005.0 and got["value"].iloc[20] == 1020.0
    for k in range(20):
        store.append(_frame(1, start=T0 + pd.Timedelta(hours=1, seconds=10 * k)))
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(sql.SQL(
            "SELECT metric, count(*), count(DISTINCT ts), min(ts), max(ts) FROM {}.samples"
            " GROUP BY metric ORDER BY metric").format(sql.Identifier(schema))).fetchall()
        views = conn.execute(sql.SQL("SELECT metric, n, first_ts, last_ts FROM {}.series"
                                     " ORDER BY metric").format(sql.Identifier(schema))).fetchall()
    assert [r[1:3] for r in rows] == [(70, 70)] * 3  # one row per sample, repeats replaced
    assert views == [(r[0], 70, T0, T0 + pd.Timedelta(hours=1, seconds=190)) for r in rows]
    assert store.series()["n"].tolist() == [70, 70, 70]


def _scrape(k: int, value: float = 1.0):
    """One scrape as a collector appends it: 20 gauges at ``T0 + 1 h + 10 s * k``."""
    t = T0 + pd.Timedelta(hours=1, seconds=10 * k)
    return make_frame([{"timestamp": t, "source": "redis:cache", "metric": "redis_used_memory_bytes",
                        "labels": {"instance": f"cache-{i}"}, "value": value + i, "kind": "gauge",
                        "unit": "bytes"} for i in range(20)])


@contextlib.contextmanager
def _round_trips(store, path):
    """Trace the store's connection (libpq's protocol trace); yields a list that receives the
    number of round trips: the times the client waited for the server after sending."""
    trips: list[int] = []
    with open(path, "w") as fh:
        store._conn.pgconn.trace(fh.fileno())
        store._conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield trips
        finally:
            store._conn.pgconn.untrace()
    senders = [line[0] for line in path.read_text().splitlines() if line[:1] in ("F", "B")]
    trips.append(sum(a == "F" and b == "B" for a, b in zip(senders, senders[1:])))


def _rows(pg_dsn, schema):
    with psycopg.connect(pg_dsn) as conn:
        return conn.execute(sql.SQL("SELECT count(*), count(DISTINCT (labels, ts)) FROM {}.samples")
                            .format(sql.Identifier(schema))).fetchone()


def test_small_append_is_one_round_trip_and_replaces_on_repeat(store, schema, pg_dsn, tmp_path):
    store.append(_scrape(0))  # new series: the general path creates them
    with _round_trips(store, tmp_path / "trace1") as trips:
        assert store.append(_scrape(1)) == 20
    assert trips == [1]
    assert store.append(_scrape(1, value=5.0)) == 20  # a repeated scrape replaces
    with _round_trips(store, tmp_path / "trace2") as trips:
        assert store.append(_scrape(2, value=9.0)) == 20
    assert trips == [1]
    # the same scrape again, and one with half its samples new: both replace, none doubles
    assert store.append(_scrape(2, value=7.0)) == 20
    mixed = pd.concat([_scrape(2, value=3.0).iloc[:10], _scrape(3, value=3.0).iloc[10:]])
    assert store.append(mixed.reset_index(drop=True)) == 20
    assert _rows(pg_dsn, schema) == (70, 70)
    got = store.query()

    def values_at(k):
        at = got[got["timestamp"] == T0 + pd.Timedelta(hours=1, seconds=10 * k)]
        return dict(zip(at["labels"], at["value"]))

    key = [labels_key({"instance": f"cache-{i}"}) for i in range(20)]
    assert values_at(1) == {key[i]: 5.0 + i for i in range(20)}
    assert values_at(2) == {key[i]: (3.0 if i < 10 else 7.0) + i for i in range(20)}
    assert sorted(store.series()["n"].tolist()) == [3] * 10 + [4] * 10
    pd.testing.assert_frame_equal(store.query(grain="1h"), downsample(got, "1h"),
                                  check_exact=False, rtol=1e-12)


def test_small_append_is_atomic(store, schema, pg_dsn, tmp_path):
    store.append(_scrape(0))
    bad = _scrape(1)
    bad.loc[7, "unit"] = "parsecs"  # one bad row: the whole scrape is refused
    with pytest.raises(DataContractError, match="unit"):
        store.append(bad)
    with pytest.raises(DataContractError, match="stored as gauge/bytes"):
        store.append(_scrape(1).assign(unit=["bytes"] * 19 + ["connections"]))
    assert _rows(pg_dsn, schema) == (20, 20)
    # a row the server refuses, in the one-round-trip statement: nothing of the scrape is kept
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER TABLE {}.sample_rows ADD CONSTRAINT no_666 CHECK (value <> 666)")
                     .format(sql.Identifier(schema)))
    refused = _scrape(1)
    refused.loc[7, "value"] = 666.0
    with _round_trips(store, tmp_path / "trace") as trips, \
            pytest.raises(StoreError, match="no_666") as err:
        store.append(refused)
    assert trips == [1] and "nothing was written" in err.value.hint
    assert _rows(pg_dsn, schema) == (20, 20)
    assert store.series()["n"].tolist() == [1] * 20  # the rollup is untouched too
    assert store.append(_scrape(1)) == 20 and store.append(_scrape(2)) == 20  # still writable
    assert _rows(pg_dsn, schema) == (60, 60)
    assert store.series()["n"].tolist() == [3] * 20


def test_grain_and_downsample_match_sqlite_semantics(store, tmp_path):
    store.append(_frame(300, step="13s"))
    pd.testing.assert_frame_equal(store.query(grain="5min"), downsample(store.query(), "5min"))
    with open_store(tmp_path / "same.sqlite") as lite:
        lite.append(_frame(300, step="13s"))
        pd.testing.assert_frame_equal(store.query(grain="1h", start="2026-03-01 00:20"),
                                      lite.query(grain="1h", start="2026-03-01 00:20"))


def test_contract_and_clash_errors_write_nothing(store):
    store.append(_frame(3))
    with pytest.raises(DataContractError, match="stored as gauge/bytes"):
        store.append(_frame(3, start=T0 + pd.Timedelta("1D")).assign(unit="count"))
    assert len(store.query()) == 9


def test_migrations_table_old_store_migrated_newer_refused(schema, pg_dsn):
    ident = sql.Identifier(schema)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # a store at schema version 1
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
        conn.execute(sql.SQL("CREATE TABLE {}.schema_migrations (version integer PRIMARY KEY,"
                             " description text NOT NULL, applied_at timestamptz NOT NULL"
                             " DEFAULT now())").format(ident))
        for stmt in pg_store.MIGRATIONS[1][1]:
            conn.execute(sql.SQL(stmt).format(s=ident))
        conn.execute(sql.SQL("INSERT INTO {}.schema_migrations VALUES (1, 'v1')").format(ident))
    with open_store(f"env:{ENV}", schema=schema) as s:
        assert s.schema_version == pg_store.SCHEMA_VERSION
        s.append(_frame(5))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        versions = [r[0] for r in conn.execute(sql.SQL(
            "SELECT version FROM {}.schema_migrations ORDER BY version").format(ident))]
        assert versions == list(range(1, pg_store.SCHEMA_VERSION + 1))
        for rel, present in (("sample_rows", True), ("rollup_1h", True), ("samples", True),
                             ("series", True), ("blocks", False)):
            assert conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                (f"{schema}.{rel}",)).fetchone()[0] is present, rel
        conn.execute(sql.SQL("INSERT INTO {}.schema_migrations VALUES (99, 'future')").format(ident))
    with pytest.raises(StoreError, match="newer capplan") as err:
        open_store(f"env:{ENV}", schema=schema)
    assert "upgrade" in err.value.hint


def test_schema_of_another_application_is_refused(schema, pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {s}; CREATE TABLE {s}.orders (id int)").format(
            s=sql.Identifier(schema)))
    with pytest.raises(StoreError, match="not a capplan store"):
        open_store(f"env:{ENV}", schema=schema)


def test_unset_variable_and_bad_schema_are_config_errors(monkeypatch, schema):
    monkeypatch.delenv("CAPPLAN_UNSET_DSN", raising=False)
    with pytest.raises(ConfigError, match="CAPPLAN_UNSET_DSN"):
        open_store("env:CAPPLAN_UNSET_DSN")
    with pytest.raises(ConfigError, match="schema"):
        open_store(f"env:{ENV}", schema="Robert'); DROP TABLE x;--")


def test_password_never_appears_in_messages_or_repr(monkeypatch, pg_dsn, schema):
    secret = "s3cr3t-Pa55"
    monkeypatch.setenv("CAPPLAN_BAD_DSN", f"host=127.0.0.1 port=1 dbname=test user=postgres "
                                          f"password={secret} connect_timeout=2")
    with pytest.raises(StoreError) as err:
        open_store("env:CAPPLAN_BAD_DSN", schema=schema)
    assert secret not in str(err.value) and "127.0.0.1:1" in str(err.value)
    assert "CAPPLAN_BAD_DSN" in str(err.value.hint)
    monkeypatch.setenv("CAPPLAN_GARBLED_DSN", f"host=127.0.0.1 password={secret} oops")
    with pytest.raises(ConfigError, match="cannot be parsed") as cerr:
        open_store("env:CAPPLAN_GARBLED_DSN", schema=schema)
    assert secret not in str(cerr.value) and cerr.value.__cause__ is None
    monkeypatch.setenv("CAPPLAN_PW_DSN", f"{pg_dsn} password={secret}")  # trust auth ignores it
    with open_store("env:CAPPLAN_PW_DSN", schema=schema) as s:
        assert secret not in repr(s) and secret not in s.target


_WRITER = textwrap.dedent("""
    import os, sys
    import numpy as np, pandas as pd
    from capplan.store import open_store
    schema, who, same = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "same"
    store = open_store("env:%s", schema=schema)
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    labels = np.array(['{"i":"%%d"}' %% i for i in range(20)], dtype=object)
    for b in range(15):
        ts = t0 + pd.to_timedelta((np.arange(100) + b * 100) * 2 + (0 if same else who), unit="s")
        n = len(ts)
        store.append(pd.DataFrame({"timestamp": np.tile(ts.as_unit("ns"), 20),
                                   "source": np.full(20 * n, "demo", dtype=object),
                                   "metric": np.full(20 * n, "x_bytes", dtype=object),
                                   "labels": np.repeat(labels, n), "value": np.full(20 * n, who + 1.0),
                                   "kind": np.full(20 * n, "gauge", dtype=object),
                                   "unit": np.full(20 * n, "bytes", dtype=object)}))
    store.close()
""") % ENV


@pytest.mark.parametrize("same", [False, True], ids=["interleaved", "same-timestamps"])
def test_two_writer_processes_on_the_same_series_lose_nothing(schema, tmp_path, python_exe, same):
    script = tmp_path / "pgwriter.py"
    script.write_text(_WRITER)
    # the schema does not exist yet: both writers also race to create it (advisory lock);
    # with the same timestamps every append of the second writer replaces the first's samples
    procs = [subprocess.Popen([python_exe, str(script), schema, str(who),
                               "same" if same else "interleaved"], stderr=subprocess.PIPE)
             for who in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    with open_store(f"env:{ENV}", schema=schema) as s:
        got = s.query("x_bytes")
        assert len(got) == (1 if same else 2) * 15 * 100 * 20
        assert not got.duplicated(["labels", "timestamp"]).any()
        assert s.series()["n"].tolist() == [len(got) // 20] * 20
        if same:
            assert set(got["value"]) <= {1.0, 2.0}
        pd.testing.assert_frame_equal(s.query(grain="1h"), downsample(got, "1h"),
                                      check_exact=False, rtol=1e-12)


def test_postgresql_url_opens_the_same_store(schema, pg_dsn):
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(pg_dsn)
    url = (f"postgresql://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}:"
           f"{info.get('port', 5432)}/{info.get('dbname', 'test')}")
    with open_store(url, schema=schema) as s:
        assert s.append(_frame(4)) == 12
        assert "postgresql URL" in s.target and url not in repr(s)
    with open_store(f"env:{ENV}", schema=schema) as s:
        assert len(s.query()) == 12
