"""Must-show: a live collection from Redis and PostgreSQL under load, with resets during it.

Starts a private redis-server on a free port and creates a private database on the PostgreSQL
given by the libpq variables (default host 127.0.0.1 port 5432 user postgres), puts them under
load with ``redis-benchmark`` and ``pgbench`` on loopback, runs :func:`capplan.collect.loop.collect`
into a fresh SQLite store, and in the middle runs ``CONFIG RESETSTAT`` on the private Redis and
``pg_stat_reset()`` in the private database.  Then it reads the store back and checks that every
sample is there, that no counter gives a negative rate (with the collector's reset signal), and
that both resets were seen.  Prints its findings; the last line is one JSON object.

    python bench/live_collection.py [--duration 60] [--interval 1]

The shared servers are only read (and one database created and dropped); nothing destructive
touches them.  ``run_live()`` is also used by tests/test_collect_loop.py with a short duration.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))   # the private-server helpers live with the tests

from fixtures.collect.servers import PrivateRedis, unique  # noqa: E402

from capplan.core import rates  # noqa: E402
from capplan.collect import create  # noqa: E402
from capplan.collect.loop import collect  # noqa: E402
from capplan.core.frame import parse_labels  # noqa: E402
from capplan.store import open_store  # noqa: E402


def admin_dsn() -> str:
    if os.environ.get("CAPPLAN_TEST_PG_DSN"):
        return os.environ["CAPPLAN_TEST_PG_DSN"]
    return (f"host={os.environ.get('PGHOST', '127.0.0.1')} port={os.environ.get('PGPORT', '5432')} "
            f"user={os.environ.get('PGUSER', 'postgres')} dbname={os.environ.get('PGDATABASE', 'test')}")


def _counter_checks(frame) -> dict:
    """Negative-rate check over every counter series, using the reset signal for Redis."""
    reset_ts: dict[str, list] = {}
    flags = frame[frame.metric == "redis_counter_reset"]
    for src, g in flags.groupby("source"):
        reset_ts[src] = list(g[g.value == 1].timestamp)
    counters = frame[frame.kind == "counter"]
    n_series = negative = 0
    for (src, _metric, _labels), g in counters.groupby(["source", "metric", "labels"]):
        s = g.set_index("timestamp")["value"].sort_index()
        r = rates.counter_rate(s, resets=reset_ts.get(src))
        n_series += 1
        negative += int((r < 0).sum())
    return {"counter_series": n_series, "negative_rates": negative}


def run_live(duration_s: float = 60.0, interval_s: float = 1.0, workdir: str | None = None,
             progress: bool = True) -> dict:
    """Run the live collection and return the findings (see module docstring)."""
    work = Path(workdir or tempfile.mkdtemp(prefix="capplan-live-"))
    admin = admin_dsn()
    dbname = unique("capplan_live")
    redis_srv = PrivateRedis()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"create database {dbname}")
    db_dsn = psycopg.conninfo.make_conninfo(admin, dbname=dbname)
    pg_env = dict(os.environ)
    d = psycopg.conninfo.conninfo_to_dict(db_dsn)
    pg_env.update({"PGHOST": str(d.get("host", "127.0.0.1")), "PGPORT": str(d.get("port", 5432)),
                   "PGUSER": str(d.get("user", "postgres")), "PGDATABASE": dbname})
    procs: list[subprocess.Popen] = []
    collectors = []
    try:
        subprocess.run(["pgbench", "-i", "-s", "1", "-q"], env=pg_env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load_s = int(duration_s + 5)
        procs.append(subprocess.Popen(
            ["redis-benchmark", "-p", str(redis_srv.port), "-c", "8", "-n", "20000", "-r",
             "20000", "-t", "set,get,incr,lpush,lpop", "-q", "-l"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(["pgbench", "-c", "4", "-j", "2", "-T", str(load_s), "-n"],
                                      env=pg_env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        os.environ["CAPPLAN_LIVE_REDIS_URL"] = redis_srv.url
        os.environ["CAPPLAN_LIVE_PG_DSN"] = db_dsn
        collectors = [
            create("redis", name="live", url_env="CAPPLAN_LIVE_REDIS_URL",
                   queues=[{"key": "mylist", "name": "benchmark"}]),
            create("postgres", name="live", dsn_env="CAPPLAN_LIVE_PG_DSN", statements_top=10),
        ]
        time.sleep(1.0)   # let the load start
        events: dict[str, float] = {}

        def resets():
            time.sleep(duration_s * 0.4)
            redis_srv.client().config_resetstat()
            events["redis_resetstat"] = time.time()
            time.sleep(duration_s * 0.25)
            with psycopg.connect(db_dsn, autocommit=True) as conn:
                conn.execute("select pg_stat_reset()")
            events["pg_stat_reset"] = time.time()

        t = threading.Thread(target=resets, daemon=True)
        t.start()
        store_path = work / "live.sqlite"
        with open_store(store_path) as store:
            result = collect(collectors, store, duration_s=duration_s, interval_s=interval_s,
                             progress=progress)
            t.join(duration_s)
            frame = store.query()
    finally:
        for c in collectors:
            c.close()
        for p in procs:
            p.terminate()
            p.wait(10)
        redis_srv.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"drop database if exists {dbname} with (force)")

    per_source_rounds = frame.groupby("source").timestamp.nunique().to_dict()
    flags = frame[(frame.metric == "redis_counter_reset") & (frame.value == 1)]
    pg_reset = frame[(frame.metric == "pg_stats_reset_time_seconds")
                     & (frame.labels.map(lambda t: parse_labels(t).get("datname")) == dbname)]
    cmds = frame[frame.metric == "redis_commands_processed_total"].set_index("timestamp")["value"]
    hits = frame[frame.metric == "redis_keyspace_hits_total"].set_index("timestamp")["value"]
    misses = frame[frame.metric == "redis_keyspace_misses_total"].set_index("timestamp")["value"]
    tx = frame[(frame.metric == "pg_xact_commit_total") & (frame.labels.map(
        lambda t: parse_labels(t).get("datname")) == dbname)].set_index("timestamp")["value"]
    reset_idx = list(flags.timestamp)
    cmd_rate = rates.counter_rate(cmds.sort_index(), resets=reset_idx)
    hit = rates.ratio_from_counters(hits.sort_index(), misses.sort_index(), resets=reset_idx)
    checks = _counter_checks(frame)
    findings = {
        "duration_s": duration_s, "interval_s": interval_s,
        "rounds": result.rounds, "rounds_planned": result.rounds_planned,
        "failures": len(result.failures),
        "samples_written": result.samples_written, "samples_in_store": int(len(frame)),
        "every_sample_in_store": int(len(frame)) == result.samples_written,
        "rounds_per_source": per_source_rounds,
        **checks,
        "redis_resets_flagged": int(len(flags)),
        "redis_reset_flag_after_resetstat": bool(len(flags)) and bool(
            (flags.timestamp.astype("int64") / 1e9 >= events.get("redis_resetstat", np.inf)).any()),
        "pg_stats_reset_seen": bool(pg_reset.value.notna().any()),
        "redis_commands_per_s_median": float(np.median(cmd_rate)) if len(cmd_rate) else None,
        "redis_hit_ratio": hit.to_dict() if hasattr(hit, "to_dict") else str(hit),
        "pg_commits_per_s_median": float(np.median(rates.counter_rate(tx.sort_index())))
        if len(tx) > 1 else None,
        "notes": list(result.notes),
    }
    return findings


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--interval", type=float, default=1.0)
    args = ap.parse_args()
    f = run_live(args.duration, args.interval)
    for k, v in f.items():
        if k != "notes":
            print(f"{k}: {v}")
    ok = (f["every_sample_in_store"] and f["negative_rates"] == 0 and f["failures"] == 0
          and f["redis_reset_flag_after_resetstat"] and f["pg_stats_reset_seen"])
    print(json.dumps({**f, "ok": ok}, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
