"""The store as SQL sees it: the examples of docs/store.md run against the real PostgreSQL (and
SQLite), and a real run into a PostgreSQL store leaves exactly its samples in capplan.samples.

Each PostgreSQL test gets a throwaway database ``capplan_test_<random>`` on the server the suite
uses (CAPPLAN_TEST_PG_DSN or the PG* variables), dropped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from capplan.collect.demo import generate_demo
from capplan.core.frame import SERIES_KEY
from capplan.store import open_store

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "store.md"
ENV = "CAPPLAN_TEST_SQL_DSN"


@pytest.fixture
def pg_database(pg_dsn, monkeypatch):
    """A new empty database; yields its DSN (also exported as $CAPPLAN_TEST_SQL_DSN)."""
    name = f"capplan_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(**{**conninfo_to_dict(pg_dsn), "dbname": name})
    monkeypatch.setenv(ENV, dsn)
    yield dsn
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        with contextlib.suppress(psycopg.Error):  # still granted in a parallel run's database
            conn.execute("DROP ROLE IF EXISTS grafana_reader")


def _doc_blocks(kind: str) -> list[str]:
    text = DOC.read_text()
    blocks = re.findall(r"<!-- test: (\w+) -->\s*```sql\n(.*?)```", text, flags=re.S)
    return [body for k, body in blocks if k == kind]


def _grafana(query: str, start: pd.Timestamp, end: pd.Timestamp) -> str:
    """Expand the Grafana PostgreSQL macros the doc uses, as Grafana does."""
    def group(m):
        col, interval = m[1], pd.Timedelta(m[2].strip("'\" "))
        return f'floor(extract(epoch from {col})/{int(interval.total_seconds())})' \
               f'*{int(interval.total_seconds())} AS "time"'
    query = re.sub(r"\$__timeGroupAlias\((\w+),\s*('[^']+')\)", group, query)
    return re.sub(r"\$__timeFilter\((\w+)\)",
                  lambda m: f"{m[1]} BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'", query)


def test_doc_sql_runs_against_postgres_and_sqlite(pg_database, tmp_path):
    pg_blocks, grafana, lite = _doc_blocks("postgres"), _doc_blocks("grafana"), _doc_blocks("sqlite")
    assert len(pg_blocks) >= 5 and len(grafana) == 1 and len(lite) == 1
    demo = generate_demo(seed=7, days=3)
    with open_store(f"env:{ENV}") as store:
        store.append(demo)
    end = demo["timestamp"].max()
    with psycopg.connect(pg_database, autocommit=True) as conn:
        for body in pg_blocks:
            cur = conn.execute(body)
            if cur.description is not None:
                assert cur.fetchall(), f"no rows from the doc query:\n{body}"
        series = conn.execute("SELECT count(*), sum(n) FROM capplan.series").fetchone()
        assert series == (demo.groupby(list(SERIES_KEY)).ngroups, len(demo))
    reader = make_conninfo(**{**conninfo_to_dict(pg_database), "user": "grafana_reader"})
    with psycopg.connect(reader, autocommit=True) as conn:  # the read-only role of the doc
        rows = conn.execute(_grafana(grafana[0], end - pd.Timedelta("6h"), end)).fetchall()
        assert rows and {r[1] for r in rows} == {"active", "idle"}
        assert all(isinstance(r[0], (int, float)) or r[0].__class__.__name__ == "Decimal"
                   for r in rows)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM capplan.sample_rows")
    with open_store(tmp_path / "m.sqlite") as store:
        store.append(demo)
        rows = store._conn.execute(lite[0]).fetchall()
    assert len(rows) == 5 and rows[0][1] == "app" and rows[0][2] > 0


def test_a_run_into_postgres_leaves_exactly_its_samples(pg_database, tmp_path):
    """`capplan run`'s collect step (its notebook under papermill, demo mode) into an env:VAR
    PostgreSQL store.  Only 01-collect runs (the later notebooks would add minutes and append
    nothing), so the run as a whole ends 'failed' for want of a report; the step itself is ok."""
    from capplan.runner.run import run_report

    params = tmp_path / "pgrun.yaml"
    params.write_text(f"mode: demo\nseed: 11\ndemo_days: 5\nstore: env:{ENV}\n")
    res = run_report(params, outputs=tmp_path / "out", pipeline=("01-collect",),
                     cell_timeout_s=300)
    assert res.notebooks[0]["notebook"] == "01-collect.ipynb"
    assert res.notebooks[0]["status"] == "ok", res.notebooks
    record = json.loads(next((tmp_path / "out" / "pgrun").rglob("findings/01-collect.json"))
                        .read_text())
    appended = record["meta"]["produced_samples"]  # what the step handed to store.append
    assert record["meta"]["mode"] == "demo" and appended > 5 * 288 * 20  # 5 days of 5-min demo
    with psycopg.connect(pg_database, autocommit=True) as conn:
        count = conn.execute("select count(*) from capplan.samples").fetchone()[0]
        n_series, n_sum = conn.execute("SELECT count(*), sum(n) FROM capplan.series").fetchone()
        dupes = conn.execute("SELECT count(*) FROM (SELECT 1 FROM capplan.samples GROUP BY"
                             " source, metric, labels, ts HAVING count(*) > 1) d").fetchone()[0]
    assert count == appended
    assert n_sum == count and dupes == 0 and n_series > 20  # the series view agrees
    assert not list((tmp_path / "out").rglob("metrics.sqlite"))  # nothing went to a file store
