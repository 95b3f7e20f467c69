"""False alarms and detection of ``capplan compare`` on independent real pgbench runs.

The test suite resamples 8 recorded runs (tests/test_compare.py); this measures on runs that
share nothing: for each of ``--pairs`` comparisons it records ``--runs`` fresh baseline runs and
``--runs`` fresh candidate runs of ONE configuration (pgbench -S -c 2 -j 1 -t N -l on the
loopback PostgreSQL, a throwaway database), and counts comparisons where any metric is not
``no change``.  Then the same with the candidate after dropping pgbench_accounts' primary key
(``--detect`` pairs), counting ``regressed`` verdicts.  Also reports single run vs single run
(``min_runs=1``) on the same recorded runs, to show why runs are the unit of evidence.

Target (checked here, never in tests): false alarms <= 5 % with 3 runs a side.  Ends with ONE
JSON line: ``{"pairs", "runs_per_side", "false_alarms", "false_alarm_rate",
"single_run_false_alarm_rate", "detect_pairs", "detected", "seconds"}``.

Usage: ``python bench/compare_calibration.py [--pairs 40] [--runs 3] [--transactions 1500]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from capplan.analysis.compare import compare_runs
from capplan.loadtest.samples import read_run_records

PG = ["-h", os.environ.get("PGHOST", "127.0.0.1"), "-p", os.environ.get("PGPORT", "5432"),
      "-U", os.environ.get("PGUSER", "postgres")]
ADMIN = f"host={PG[1]} port={PG[3]} user={PG[5]} dbname=postgres"


def run(db: str, where: Path, n: int):
    where.mkdir(parents=True)
    subprocess.run(["pgbench", *PG, "-S", "-c", "2", "-j", "1", "-t", str(n), "-l", db],
                   cwd=where, check=True, capture_output=True, timeout=120)
    return read_run_records(where)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--transactions", type=int, default=1500, help="per client and run")
    ap.add_argument("--detect", type=int, default=5)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # still drop the database
    db = f"capplan_bench_cmp_{os.getpid()}"
    t0 = time.perf_counter()
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(f'create database "{db}"')
    alarms, single_alarms, detected = [], 0, 0
    try:
        subprocess.run(["pgbench", *PG, "-i", "-s", "1", "-q", db], check=True,
                       capture_output=True, timeout=120)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for k in range(a.pairs):
                b = [run(db, root / f"p{k}b{i}", a.transactions) for i in range(a.runs)]
                c = [run(db, root / f"p{k}c{i}", a.transactions) for i in range(a.runs)]
                cmp = compare_runs(b, c, seed=k, n_boot=500)
                bad = [m.reason for m in cmp.metrics if m.verdict != "no change"]
                if bad:
                    alarms.append(bad)
                one = compare_runs(b[:1], c[:1], seed=k, n_boot=500, min_runs=1)
                single_alarms += one.verdict != "no change"
                print(f"pair {k + 1}/{a.pairs}: {cmp.verdict}; single run: {one.verdict}",
                      file=sys.stderr)
            base = [run(db, root / f"db{i}", a.transactions) for i in range(a.runs * a.detect)]
            dsn = ADMIN.replace("dbname=postgres", f"dbname={db}")
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("alter table pgbench_accounts drop constraint pgbench_accounts_pkey")
            for k in range(a.detect):
                cand = [run(db, root / f"dc{k}_{i}", 100) for i in range(a.runs)]
                cmp = compare_runs(base[k * a.runs:(k + 1) * a.runs], cand, seed=k, n_boot=500)
                detected += cmp.verdict == "regressed"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as c:
            c.execute(f'drop database if exists "{db}" with (force)')
    for bad in alarms:
        print("false alarm:", "; ".join(bad))
    out = {"pairs": a.pairs, "runs_per_side": a.runs, "false_alarms": len(alarms),
           "false_alarm_rate": len(alarms) / a.pairs,
           "single_run_false_alarm_rate": single_alarms / a.pairs, "detect_pairs": a.detect,
           "detected": detected, "seconds": round(time.perf_counter() - t0, 1)}
    print(f"false alarms {len(alarms)}/{a.pairs} ({out['false_alarm_rate']:.1%}, target <= 5%); "
          f"single run vs single run {single_alarms}/{a.pairs}; detected {detected}/{a.detect}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
