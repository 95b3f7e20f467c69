"""Block stores (schema 2, written by the block-store capplan) are migrated forward to rows.

The fixtures in tests/fixtures/store/ were written by capplan 154ecc8's own store code
(tests/fixtures/store/make_v2_fixtures.py): an SQLite file, and the rows of a PostgreSQL schema
(its bytea blocks in hex) that the test loads into the schema-2 tables that code created.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql

import capplan.store.postgres as pg_store
import capplan.store.sqlite as sqlite_store
from capplan.core.frame import SERIES_KEY
from capplan.store import downsample, open_store

T0 = pd.Timestamp("2026-03-01T00:00:00Z")
ENV = "CAPPLAN_TEST_MIGRATE_DSN"


def _expected() -> pd.DataFrame:
    """What make_v2_fixtures.py appended (5,420 samples in three series)."""
    n = 5000
    ts = pd.date_range(T0, periods=n, freq="10s")
    i = np.arange(n)
    conn = (i % 7).astype(float)
    conn[3] = np.nan
    parts = [("redis:cache", "redis_used_memory_bytes", '{"db":"0","instance":"cache"}',
              1000.0 + i, "gauge", "bytes", n),
             ("postgres:app", "pg_connections", '{"instance":"app","état":"actif"}', conn,
              "gauge", "connections", 300),
             ("redis:cache", "redis_commands_processed", "{}", 10.0 * i, "counter", "commands", 120)]
    df = pd.concat([pd.DataFrame({"timestamp": ts[:m], "source": s, "metric": me, "labels": lab,
                                  "value": v[:m], "kind": k, "unit": u})
                    for s, me, lab, v, k, u, m in parts], ignore_index=True)
    for c in ("source", "metric", "labels", "kind", "unit"):
        df[c] = df[c].astype(object)
    df["timestamp"] = df["timestamp"].astype("datetime64[ns, UTC]")
    return df.sort_values([*SERIES_KEY, "timestamp"], kind="stable").reset_index(drop=True)


def _check(store) -> None:
    want = _expected()
    got = store.query()
    pd.testing.assert_frame_equal(got, want)
    assert store.series()["n"].tolist() == [300, 120, 5000]
    pd.testing.assert_frame_equal(store.query(grain="1h"), downsample(want, "1h"),
                                  check_exact=False, rtol=1e-12)
    # appending after the migrated tail, and replacing a migrated sample, both still work
    tail = want[want["metric"] == "redis_commands_processed"].tail(1).copy()
    tail["timestamp"] += pd.Timedelta("10s")
    tail["value"] += 10.0
    assert store.append(tail) == 1
    fix = want.iloc[[0]].assign(value=-1.0)
    store.append(fix)
    assert store.query(fix["metric"].iloc[0])["value"].iloc[0] == -1.0
    assert store.series()["n"].tolist() == [300, 121, 5000]


def test_sqlite_block_store_is_migrated_to_rows(fixtures_dir, tmp_path):
    path = tmp_path / "old.sqlite"
    shutil.copy(fixtures_dir / "store" / "store_v2_blocks.sqlite", path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM blocks").fetchone()[0] == 4
    conn.close()
    with open_store(path) as s:
        assert s.schema_version == sqlite_store.SCHEMA_VERSION == 3
        _check(s)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 5420 + 1
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'blocks'").fetchone()[0] == 0
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


@pytest.fixture
def schema(pg_dsn, monkeypatch):
    monkeypatch.setenv(ENV, pg_dsn)
    name = f"capplan_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def test_postgres_block_store_is_migrated_to_rows(fixtures_dir, schema, pg_dsn):
    fx = json.loads((fixtures_dir / "store" / "store_pg_v2_blocks.json").read_text())
    ident = sql.Identifier(schema)
    with psycopg.connect(pg_dsn, autocommit=True) as conn, conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
        conn.execute(sql.SQL("CREATE TABLE {}.schema_migrations (version integer PRIMARY KEY,"
                             " description text NOT NULL, applied_at timestamptz NOT NULL"
                             " DEFAULT now())").format(ident))
        for v in (1, 2):  # the schema-2 DDL, as the block-store code created it
            for stmt in pg_store.MIGRATIONS[v][1]:
                conn.execute(sql.SQL(stmt).format(s=ident))
        conn.cursor().executemany(sql.SQL("INSERT INTO {}.schema_migrations (version, description)"
                                          " VALUES (%s, %s)").format(ident), fx["schema_migrations"])
        conn.cursor().executemany(sql.SQL("INSERT INTO {}.series VALUES (%s, %s, %s, %s, %s, %s)")
                                  .format(ident), fx["series"])
        conn.cursor().executemany(sql.SQL(
            "INSERT INTO {}.blocks VALUES (%s, %s, %s, %s, decode(%s, 'hex'), decode(%s, 'hex'))")
            .format(ident), fx["blocks"])
        conn.execute(sql.SQL("SELECT setval(pg_get_serial_sequence(%s, 'id'), 3)"),
                     (f"{schema}.series",))
    with open_store(f"env:{ENV}", schema=schema) as s:
        assert s.schema_version == pg_store.SCHEMA_VERSION == 3
        _check(s)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}.samples").format(ident)).fetchone()[0] \
            == 5420 + 1
        assert conn.execute(sql.SQL("SELECT max(version) FROM {}.schema_migrations").format(ident)
                            ).fetchone()[0] == 3
        assert conn.execute("SELECT to_regclass(%s)", (f"{schema}.blocks",)).fetchone()[0] is None
        parts = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass(%s)",
                             (f"{schema}.sample_rows",)).fetchone()[0]
        assert parts == 1  # March 2026
