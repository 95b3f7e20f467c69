"""Speed of the metrics store (SQLite file and PostgreSQL schema), against the issue-16 targets.

Figures (each printed per store; the JSON key holds the worse of the two stores):
  * ``sqlite_ingest_per_s`` / ``postgres_ingest_per_s``: samples/s through ``store.append`` of
    realistic contract frames (20 series x 5,000 timestamps, gauges and counters)  >= 200,000;
  * ``small_append_ms``: median time of one ``store.append`` of a 20-sample scrape  <= 5 ms
    (the part spent in ``capplan.core.frame.validate_frame`` is printed separately);
  * ``read_10m_s``: ``store.query`` of 10 million samples of one metric into a DataFrame <= 10 s;
  * ``service_query_ms``: a 90-day, 20-series service at 5-minute resolution queried at 1 h
    grain over its 90 days (as the growth step does), median of 5 runs  <= 200 ms.

PostgreSQL comes from ``CAPPLAN_TEST_PG_DSN`` or the PG* variables (default ``host=127.0.0.1
dbname=test user=postgres``); the bench uses a uniquely named schema and drops it afterwards.
SQLite files go in a temporary directory.  The machine load (1-min load average) is printed,
since the store shares the cores with the server.  Ends with ONE JSON line.

Usage: ``python bench/store_speed.py [--read-samples N] [--skip-postgres-read] [--small-only]``
(``--small-only``: only the 20-sample append, after loading 2 frames so that the series exist;
a minute instead of several; the JSON line then holds ``small_append_ms`` and one key per store).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid

import numpy as np
import pandas as pd

from capplan.core.frame import labels_key, validate_frame
from capplan.store import open_store

N_SERIES = 20
T0 = pd.Timestamp("2025-01-01", tz="UTC")
TARGETS = {"sqlite_ingest_per_s": (">=", 200_000), "postgres_ingest_per_s": (">=", 200_000),
           "small_append_ms": ("<=", 5.0), "read_10m_s": ("<=", 10.0),
           "service_query_ms": ("<=", 200.0)}


def realistic_frame(batch: int, n_ts: int, *, one_metric: bool = False,
                    step_s: int = 10, t0: pd.Timestamp = T0) -> pd.DataFrame:
    """20 series (10 gauges, 10 counters; or 20 gauges of one metric) x ``n_ts`` timestamps."""
    ts = (t0 + pd.to_timedelta((np.arange(n_ts) + batch * n_ts) * step_s, unit="s")).as_unit("ns")
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


def ingest(store, batches: int, n_ts: int, *, one_metric: bool = False,
           t0: pd.Timestamp = T0, step_s: int = 10) -> tuple[int, float]:
    """Append ``batches`` frames; returns (samples, seconds spent inside store.append)."""
    total, spent = 0, 0.0
    for b in range(batches):
        frame = realistic_frame(b, n_ts, one_metric=one_metric, t0=t0, step_s=step_s)
        t = time.perf_counter()
        total += store.append(frame)
        spent += time.perf_counter() - t
    return total, spent


def small_appends(store, n: int) -> tuple[float, float]:
    """Median seconds per append of one scrape (20 samples), and of validate_frame alone."""
    frames = [realistic_frame(10**6 + k, 1) for k in range(n)]
    times, checks = [], []
    for f in frames:
        t = time.perf_counter()
        store.append(f)
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        validate_frame(f)
        checks.append(time.perf_counter() - t)
    return statistics.median(times), statistics.median(checks)


def service_query(store) -> tuple[int, float]:
    """Load a 90-day 20-series service at 5 min; median seconds of a 1 h query over it."""
    start = pd.Timestamp("2026-01-01", tz="UTC")
    n = 90 * 288
    ingest(store, 1, n, t0=start, step_s=300)
    end = start + pd.Timedelta(days=90)
    times, rows = [], 0
    for _ in range(5):
        t = time.perf_counter()
        rows = len(store.query(["redis_used_memory_bytes", "redis_commands_processed"],
                               start=end - pd.Timedelta(days=90), end=end, grain="1h"))
        times.append(time.perf_counter() - t)
    return rows, statistics.median(times)


def timed_read(store, metric: str) -> tuple[int, float]:
    t = time.perf_counter()
    df = store.query(metric)
    return len(df), time.perf_counter() - t


def bench_small(name: str, store, out: dict, n: int) -> None:
    per, check = small_appends(store, n)
    out.setdefault("small", {})[name] = per * 1e3
    print(f"{name:8} small append (one scrape, {N_SERIES} samples): median {per * 1e3:.2f} ms "
          f"of {n} (of which validate_frame {check * 1e3:.2f} ms); load {os.getloadavg()[0]:.2f}")


def bench_store(name: str, store, args, out: dict) -> None:
    if args.small_only:
        ingest(store, 2, 5000)  # the series exist and have a tail, as for a collector
        bench_small(name, store, out, 300)
        return
    n, s = ingest(store, 20, 5000)
    out[f"{name}_ingest_per_s"] = n / s
    print(f"{name:8} ingest: {n:,} samples in {s:.2f} s = {n / s:,.0f} samples/s "
          f"(frames of {N_SERIES} series x 5000 timestamps)")
    bench_small(name, store, out, 100)
    with_service = open_store_like(store, "service")
    try:
        rows, q = service_query(with_service)
    finally:
        with_service.close()
    out.setdefault("service", {})[name] = q * 1e3
    print(f"{name:8} 90-day 20-series service at 1 h grain: {rows:,} rows, median {q * 1e3:.1f} ms")
    if name == "postgres" and args.skip_postgres_read:
        return
    n_read_ts = args.read_samples // N_SERIES
    read_batch = 10_000
    reader = open_store_like(store, "read")
    try:
        n, s = ingest(reader, max(1, n_read_ts // read_batch), read_batch, one_metric=True)
        print(f"{name:8} loaded {n:,} samples of one metric in {s:.1f} s ({n / s:,.0f} samples/s)")
        rows, s = timed_read(reader, "redis_used_memory_rss_bytes")
    finally:
        reader.close()
    out.setdefault("read", {})[name] = s
    print(f"{name:8} query: {rows:,} samples into a DataFrame in {s:.2f} s")


_TMP: list[str] = []
_SCHEMAS: list[str] = []


def open_store_like(store, tag: str):
    """A fresh store of the same backend (own file / own schema)."""
    if hasattr(store, "path"):
        return open_store(os.path.join(_TMP[0], f"{tag}.sqlite"))
    schema = f"capplan_bench_{uuid.uuid4().hex[:10]}"
    _SCHEMAS.append(schema)
    return open_store("env:CAPPLAN_BENCH_PG_DSN", schema=schema)


def _pg_dsn() -> str:
    if os.environ.get("CAPPLAN_TEST_PG_DSN"):
        return os.environ["CAPPLAN_TEST_PG_DSN"]
    return " ".join(f"{k}={os.environ.get(v, d)}" for k, v, d in (
        ("host", "PGHOST", "127.0.0.1"), ("port", "PGPORT", "5432"),
        ("dbname", "PGDATABASE", "test"), ("user", "PGUSER", "postgres")))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--read-samples", type=int, default=10_000_000)
    ap.add_argument("--skip-postgres-read", action="store_true",
                    help="do not load and read the read-samples into PostgreSQL too")
    ap.add_argument("--small-only", action="store_true",
                    help="measure only the 20-sample append of both stores")
    args = ap.parse_args(argv)
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    out: dict = {}
    dsn = _pg_dsn()
    os.environ["CAPPLAN_BENCH_PG_DSN"] = dsn
    with tempfile.TemporaryDirectory(prefix="capplan-bench-") as tmp:
        _TMP.append(tmp)
        with open_store(os.path.join(tmp, "ingest.sqlite")) as store:
            bench_store("sqlite", store, args, out)
        schema = f"capplan_bench_{uuid.uuid4().hex[:10]}"
        _SCHEMAS.append(schema)
        try:
            with open_store("env:CAPPLAN_BENCH_PG_DSN", schema=schema) as store:
                bench_store("postgres", store, args, out)
        finally:
            import psycopg
            from psycopg import sql

            with psycopg.connect(dsn, autocommit=True) as conn:
                for s in _SCHEMAS:
                    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s)))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    if args.small_only:
        small = {"small_append_ms": max(out["small"].values()),
                 **{f"{k}_small_append_ms": v for k, v in out["small"].items()}}
        op, limit = TARGETS["small_append_ms"]
        print(f"small_append_ms: {small['small_append_ms']:,.2f} (target {op} {limit:,}) "
              f"{'OK' if small['small_append_ms'] <= limit else 'MISSED'}")
        print(json.dumps({k: round(v, 3) for k, v in small.items()}))
        return 0
    result = {"sqlite_ingest_per_s": out["sqlite_ingest_per_s"],
              "postgres_ingest_per_s": out["postgres_ingest_per_s"],
              "small_append_ms": max(out["small"].values()),
              "read_10m_s": max(out["read"].values()),
              "service_query_ms": max(out["service"].values())}
    for key, (op, limit) in TARGETS.items():
        ok = result[key] >= limit if op == ">=" else result[key] <= limit
        detail = {"small_append_ms": "small", "read_10m_s": "read", "service_query_ms": "service"}
        per = out.get(detail.get(key, ""), {})
        extra = ("  (" + ", ".join(f"{k} {v:,.2f}" for k, v in per.items()) + ")") if per else ""
        print(f"{key}: {result[key]:,.2f} (target {op} {limit:,}) {'OK' if ok else 'MISSED'}{extra}")
    print(json.dumps({k: round(v, 3) for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
