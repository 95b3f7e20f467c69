"""PostgreSQL collector against real servers: the shared one (in private databases and roles
created and dropped here) and a private cluster with pg_stat_statements preloaded and scram
passwords for non-superusers."""

from __future__ import annotations

import math

import pandas as pd
import psycopg
import pytest

from capplan.core import rates
from capplan.collect import create
from capplan.collect.postgres import BACKEND_STATES, PostgresCollector
from capplan.errors import ConfigError, SourceUnavailable
from capplan.core.frame import labels_key, parse_labels, series, validate_frame
from fixtures.collect.servers import PrivateCluster, SilentServer, free_port, unique


def _value(frame, metric, labels=None):
    rows = frame[(frame.metric == metric) & (frame.labels == labels_key(labels or {}))]
    assert len(rows) == 1, f"{metric} {labels}: {len(rows)} rows"
    return float(rows.value.iloc[0])


def _with_dsn(monkeypatch, dsn: str, name: str = "app", **kw) -> PostgresCollector:
    monkeypatch.setenv("CAP_TEST_PG_DSN", dsn)
    return create("postgres", name=name, dsn_env="CAP_TEST_PG_DSN", **kw)


def _dsn_for(pg_dsn: str, **over) -> str:
    d = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    d.update(over)
    return psycopg.conninfo.make_conninfo("", **d)


@pytest.fixture(scope="module")
def private_db(pg_dsn):
    """A database of our own on the shared server, with an indexed and an unindexed table."""
    name = unique("capplan_coll")
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"create database {name}")
    dsn = _dsn_for(pg_dsn, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table items (id int primary key, v text)")
        conn.execute("create table log (v text)")
        conn.execute("insert into items select g, 'x' from generate_series(1, 500) g")
        conn.execute("insert into log select 'y' from generate_series(1, 50)")
        conn.execute("analyze")
        conn.execute("select * from items where id = 3").fetchall()
    yield name, dsn
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"drop database if exists {name} with (force)")


@pytest.fixture(scope="module")
def cluster():
    c = PrivateCluster()
    yield c
    c.stop()


def test_snapshot_contract_connections_and_no_datid_zero(monkeypatch, pg_dsn, private_db):
    name, dsn = private_db
    c = _with_dsn(monkeypatch, dsn)
    try:
        f = validate_frame(c.snapshot())
        with c._main().cursor() as cur:
            settings = {k: cur.execute(f"show {k}").fetchone()[0]
                        for k in ("statement_timeout", "lock_timeout",
                                  "default_transaction_read_only")}
    finally:
        c.close()
    assert settings == {"statement_timeout": "2s", "lock_timeout": "1s",
                        "default_transaction_read_only": "on"}
    assert f.value.map(type).eq(float).all()   # no Decimal anywhere
    dbs = {parse_labels(t)["datname"] for t in f[f.metric == "pg_numbackends"].labels}
    assert name in dbs and "" not in dbs and "None" not in dbs
    assert len(dbs) == len(f[f.metric == "pg_xact_commit_total"])
    states = {parse_labels(t)["state"] for t in f[f.metric == "pg_client_backends"].labels}
    assert states == set(BACKEND_STATES)
    assert _value(f, "pg_client_backends", {"state": "active"}) >= 1   # our own session
    maxc, su = _value(f, "pg_max_connections"), _value(f, "pg_superuser_reserved_connections")
    assert _value(f, "pg_usable_connections") == maxc - su
    assert _value(f, "pg_database_size_bytes", {"datname": name}) > 0
    assert math.isnan(_value(f, "pg_stats_reset_time_seconds", {"datname": name}))
    lab = {"datname": name, "schema": "public", "table": "items"}
    assert _value(f, "pg_table_live_tuples", lab) > 0   # an estimate
    assert _value(f, "pg_table_idx_scan_total", lab) >= 1
    assert not len(f[(f.metric == "pg_table_idx_scan_total") & f.labels.str.contains('"log"')])
    assert _value(f, "pg_index_scan_total", {**lab, "index": "items_pkey"}) >= 1
    kinds = f.groupby("metric").kind.first()
    assert kinds["pg_xact_commit_total"] == "counter" and kinds["pg_numbackends"] == "gauge"


def test_database_sizes_are_read_at_most_every_sizes_every_s(monkeypatch, private_db):
    _, dsn = private_db
    c = _with_dsn(monkeypatch, dsn)                     # default: every 60 s
    first, second = c.snapshot(), c.snapshot()
    c.close()
    assert (first.metric == "pg_database_size_bytes").any()
    assert not (second.metric == "pg_database_size_bytes").any()
    assert (second.metric == "pg_numbackends").any()
    c = _with_dsn(monkeypatch, dsn, sizes_every_s=0)   # always
    assert (c.snapshot().metric == "pg_database_size_bytes").any()
    assert (c.snapshot().metric == "pg_database_size_bytes").any()
    c.close()


def test_pg_stat_reset_during_collection_gives_no_negative_rate(monkeypatch, private_db):
    name, dsn = private_db
    c = _with_dsn(monkeypatch, dsn)
    frames = [c.snapshot()]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(30):
            conn.execute("select count(*) from items").fetchall()
    frames.append(c.snapshot())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select pg_stat_reset()")   # resets our private database only
    frames.append(c.snapshot())
    c.close()
    f = pd.concat(frames, ignore_index=True)
    reset_t = series(f, "pg_stats_reset_time_seconds", labels={"datname": name})
    assert math.isnan(reset_t.iloc[0]) and not math.isnan(reset_t.iloc[2])
    commits = series(f, "pg_xact_commit_total", labels={"datname": name})
    assert commits.iloc[2] < commits.iloc[1]
    assert (rates.counter_increase(commits) >= 0).all()
    seq = series(f, "pg_table_seq_scan_total",
                 labels={"datname": name, "schema": "public", "table": "items"})
    assert (rates.counter_rate(seq) >= 0).all()


def test_role_with_only_pg_monitor_sees_everything(monkeypatch, pg_dsn, private_db):
    name, _ = private_db
    role = unique("capplan_mon")
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"create role {role} login")
        admin.execute(f"grant pg_monitor to {role}")
    try:
        # some other session of another role, idle, so states must be visible
        with psycopg.connect(_dsn_for(pg_dsn, dbname=name), autocommit=True):
            c = _with_dsn(monkeypatch, _dsn_for(pg_dsn, dbname=name, user=role))
            f = validate_frame(c.snapshot())
            c.close()
        assert _value(f, "pg_client_backends", {"state": "unknown"}) == 0
        assert _value(f, "pg_client_backends", {"state": "idle"}) >= 1
        sizes = f[f.metric == "pg_database_size_bytes"]
        assert sizes.value.notna().all() and len(sizes) >= 3
        assert _value(f, "pg_table_live_tuples",
                      {"datname": name, "schema": "public", "table": "items"}) >= 0   # visible
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(f"drop role if exists {role}")


def test_statements_absent_or_not_loaded_is_a_clear_note(monkeypatch, private_db):
    _, dsn = private_db
    c = _with_dsn(monkeypatch, dsn)
    f = c.snapshot()
    assert _value(f, "pg_stat_statements_available") == 0
    assert any("not installed" in n and "shared_preload_libraries" in n for n in c.notes)
    c.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create extension if not exists pg_stat_statements")
    try:
        c = _with_dsn(monkeypatch, dsn)
        f = validate_frame(c.snapshot())   # the shared server does not preload it
        c.close()
        assert _value(f, "pg_stat_statements_available") == 0
        assert any("not loaded" in n for n in c.notes)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("drop extension if exists pg_stat_statements")


def test_statements_present_top_n_in_seconds(monkeypatch, cluster):
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute("create extension if not exists pg_stat_statements")
        for i in range(20):
            conn.execute("select pg_sleep(0.001), %s::int", (i,)).fetchall()
    c = _with_dsn(monkeypatch, cluster.dsn(), statements_top=3)
    f = validate_frame(c.snapshot())
    c.close()
    assert _value(f, "pg_stat_statements_available") == 1
    calls = f[f.metric == "pg_statement_calls_total"]
    secs = f[f.metric == "pg_statement_exec_seconds_total"]
    assert 1 <= len(calls) <= 3 and len(secs) == len(calls)
    assert calls.value.max() >= 20     # the pg_sleep statement, normalised to one queryid
    assert secs.value.max() >= 0.02 and secs.value.max() < 60   # ms converted to seconds
    assert not c.notes


def test_wrong_password_is_clear_and_never_shows_the_password(monkeypatch, cluster):
    role = unique("capplan_pw")
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(f"create role {role} login password 'Right-Pass-1'")
        conn.execute(f"grant pg_monitor to {role}")
    c = _with_dsn(monkeypatch, cluster.dsn(user=role, password="Wrong-Pass-9"))
    with pytest.raises(SourceUnavailable) as ei:
        c.snapshot()
    text = str(ei.value) + repr(c)
    assert "Wrong-Pass-9" not in text and role in text and "password" in ei.value.hint
    # libpq environment variables are the default
    monkeypatch.delenv("CAP_TEST_PG_DSN")
    for k, v in {"PGHOST": "127.0.0.1", "PGPORT": str(cluster.port), "PGUSER": role,
                 "PGDATABASE": "postgres", "PGPASSWORD": "Right-Pass-1"}.items():
        monkeypatch.setenv(k, v)
    ok = create("postgres", name="env")
    assert len(validate_frame(ok.snapshot()))
    ok.close()
    monkeypatch.setenv("PGPASSWORD", "Wrong-Pass-9")
    with pytest.raises(SourceUnavailable) as ei:
        create("postgres", name="env").snapshot()
    assert "Wrong-Pass-9" not in str(ei.value)


@pytest.mark.timeout(20)
def test_unreachable_and_silent_servers_fail_within_the_timeout(monkeypatch):
    c = _with_dsn(monkeypatch, f"host=127.0.0.1 port={free_port()} dbname=x user=y")
    with pytest.raises(SourceUnavailable, match="port="):
        c.snapshot()
    srv = SilentServer()
    try:
        c = _with_dsn(monkeypatch, f"host=127.0.0.1 port={srv.port} dbname=x user=y "
                                   "sslmode=disable", timeout_s=2)
        with pytest.raises(SourceUnavailable) as ei:
            c.snapshot()
        assert "timeout" in str(ei.value).lower()
    finally:
        srv.close()


def test_database_without_connect_is_skipped_with_a_note(monkeypatch, pg_dsn, private_db):
    name, _ = private_db
    role = unique("capplan_noconn")
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"create role {role} login")
        admin.execute(f"grant pg_monitor to {role}")
        admin.execute(f"revoke connect on database {name} from public")
    try:
        c = _with_dsn(monkeypatch, _dsn_for(pg_dsn, user=role), databases=[name])
        f = validate_frame(c.snapshot())
        c.close()
        assert any(name in n and "skipped" in n for n in c.notes)
        assert (f.metric == "pg_numbackends").any()
        assert not (f.metric == "pg_table_live_tuples").any()
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(f"grant connect on database {name} to public")
            admin.execute(f"drop role if exists {role}")


def test_params_errors():
    with pytest.raises(ConfigError, match="unknown key"):
        PostgresCollector("x", dsn="host=h")
    with pytest.raises(ConfigError, match="databases"):
        PostgresCollector("x", databases="some")
    with pytest.raises(ConfigError, match="statements_top"):
        PostgresCollector("x", statements_top=-1)
