"""Speed of the metrics store: ingest into SQLite and PostgreSQL, and reading 10 million samples.

Targets (checked here, never in tests):
  * ingest through ``store.append`` >= 200,000 samples/s into SQLite, >= 100,000 into PostgreSQL
    (realistic contract frames: 20 series sharing one timestamp column, gauges and counters);
  * reading 10 million samples of one metric into a DataFrame with ``store.query`` <= 10 s
    (SQLite, the default store; the PostgreSQL figure is printed too).

PostgreSQL comes from ``CAPPLAN_TEST_PG_DSN`` (default ``host=127.0.0.1 dbname=test
user=postgres``); the bench uses a uniquely named schema and drops it afterwards.  SQLite files
go in a temporary directory.  Prints its figures and ends with ONE JSON line:
``{"sqlite_ingest_per_s": ..., "postgres_ingest_per_s": ..., "read_10m_s": ...}``.

Usage: ``python bench/store_speed.py [--read-samples N] [--skip-postgres-read]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid

import numpy as np
import pandas as pd

from capplan.core.frame import labels_key
from capplan.store import open_store

N_SERIES = 20
T0 = pd.Timestamp("2025-01-01", tz="UTC")


def realistic_frame(batch: int, n_ts: int, *, one_metric: bool = False,
                    step_s: int = 10) -> pd.DataFrame:
    """20 series (10 gauges, 10 counters; or 20 gauges of one metric) x ``n_ts`` timestamps."""
    ts = (T0 + pd.to_timedelta((np.arange(n_ts) + batch * n_ts) * step_s, unit="s")).as_unit("ns")
    metrics, kinds, units, labels = [], [], [], []
    for i in range(N_SERIES):
        gauge = one_metric or i < N_SERIES // 2
        metrics.append(("redis_used_memory_rss_bytes" if one_metric else "redis_used_memory_bytes")
                       if gauge else "redis_commands_processed")
        kinds.append("gauge" if gauge else "counter")
        units.append("bytes" if gauge else "commands")
        labels.append(labels_key({"instance": f"cache-{i % 10}", "role": "primary" if i < 10 else "replica"}))
    rng = np.random.default_rng(batch)
    values = np.where(np.repeat(np.array(kinds) == "counter", n_ts),
                      np.tile(np.arange(n_ts, dtype=float) + batch * n_ts, N_SERIES) * 50.0,
                      rng.normal(1e9, 1e7, N_SERIES * n_ts))

    def obj(values):
        return np.repeat(np.array(values, dtype=object), n_ts)

    return pd.DataFrame({
        "timestamp": np.tile(ts, N_SERIES),
        "source": obj(["redis:cache"] * N_SERIES), "metric": obj(metrics), "labels": obj(labels),
        "value": values, "kind": obj(kinds), "unit": obj(units)})


def ingest(store, batches: int, n_ts: int, *, one_metric: bool = False) -> tuple[int, float]:
    """Append ``batches`` frames; returns (samples, seconds spent inside store.append)."""
    total, spent = 0, 0.0
    for b in range(batches):
        frame = realistic_frame(b, n_ts, one_metric=one_metric)
        t = time.perf_counter()
        total += store.append(frame)
        spent += time.perf_counter() - t
    return total, spent


def small_appends(store, n: int) -> float:
    """Seconds per append of one scrape (20 samples), the collector's pattern."""
    frames = [realistic_frame(10**6 + k, 1) for k in range(n)]
    t = time.perf_counter()
    for f in frames:
        store.append(f)
    return (time.perf_counter() - t) / n


def timed_read(store, metric: str) -> tuple[int, float]:
    t = time.perf_counter()
    df = store.query(metric)
    return len(df), time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--read-samples", type=int, default=10_000_000)
    ap.add_argument("--skip-postgres-read", action="store_true",
                    help="do not load and read the read-samples into PostgreSQL too")
    args = ap.parse_args(argv)
    n_read_ts = args.read_samples // N_SERIES
    read_batch = 10_000
    read_batches = max(1, n_read_ts // read_batch)

    out: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory(prefix="capplan-bench-") as tmp:
        with open_store(os.path.join(tmp, "ingest.sqlite")) as store:
            n, s = ingest(store, 20, 5000)
            out["sqlite_ingest_per_s"] = n / s
            print(f"sqlite   ingest: {n:,} samples in {s:.2f} s = {n / s:,.0f} samples/s "
                  f"(frames of {N_SERIES} series x 5000 timestamps)")
            per = small_appends(store, 100)
            print(f"sqlite   small appends (one scrape, {N_SERIES} samples): {per * 1e3:.1f} ms each")
        with open_store(os.path.join(tmp, "read.sqlite")) as store:
            n, s = ingest(store, read_batches, read_batch, one_metric=True)
            print(f"sqlite   loaded {n:,} samples of one metric in {s:.1f} s "
                  f"({n / s:,.0f} samples/s); file {os.path.getsize(store.path) / 1e6:,.0f} MB")
            rows, s = timed_read(store, "redis_used_memory_rss_bytes")
            out["read_10m_s"] = s
            print(f"sqlite   query: {rows:,} samples into a DataFrame in {s:.2f} s")
            t = time.perf_counter()
            hourly = store.query("redis_used_memory_rss_bytes", grain="1h")
            print(f"sqlite   query grain=1h: {len(hourly):,} rows in {time.perf_counter() - t:.2f} s")

    dsn = os.environ.get("CAPPLAN_TEST_PG_DSN") or "host=127.0.0.1 dbname=test user=postgres"
    schema = f"capplan_bench_{uuid.uuid4().hex[:10]}"
    os.environ["CAPPLAN_BENCH_PG_DSN"] = dsn
    store = open_store("env:CAPPLAN_BENCH_PG_DSN", schema=schema)
    try:
        n, s = ingest(store, 20, 5000)
        out["postgres_ingest_per_s"] = n / s
        print(f"postgres ingest: {n:,} samples in {s:.2f} s = {n / s:,.0f} samples/s")
        per = small_appends(store, 100)
        print(f"postgres small appends (one scrape, {N_SERIES} samples): {per * 1e3:.1f} ms each")
        if not args.skip_postgres_read:
            n, s = ingest(store, read_batches, read_batch, one_metric=True)
            print(f"postgres loaded {n:,} samples of one metric in {s:.1f} s ({n / s:,.0f} samples/s)")
            rows, s = timed_read(store, "redis_used_memory_rss_bytes")
            print(f"postgres query: {rows:,} samples into a DataFrame in {s:.2f} s")
    finally:
        store.close()
        import psycopg
        from psycopg import sql

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))

    targets = {"sqlite_ingest_per_s": (">=", 200_000), "postgres_ingest_per_s": (">=", 100_000),
               "read_10m_s": ("<=", 10.0)}
    for key, (op, limit) in targets.items():
        ok = out[key] >= limit if op == ">=" else out[key] <= limit
        print(f"{key}: {out[key]:,.2f} (target {op} {limit:,}) {'OK' if ok else 'MISSED'}")
    print(json.dumps({k: round(out[k], 3) for k in ("sqlite_ingest_per_s", "postgres_ingest_per_s",
                                                     "read_10m_s")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
