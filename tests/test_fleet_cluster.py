"""`capplan fleet --scheduler` on a real Dask cluster: a `dask scheduler` and two `dask worker`
processes started from the venv's CLI (separate processes, loopback, free ports), one worker
killed with SIGKILL while it runs a service.  The fleet must still complete with every service
reported (Dask resubmits the lost task to the surviving worker) and give the same numbers as a
LocalCluster run of the same fleet file.  The surviving worker then fits a few series with
:func:`capplan.runner.fleet_series.fit_series_fleet` (started with its ``WORKER_ENV``: no Dask
profiler), and the rows must be identical to a LocalCluster's.

Every process the test starts is stopped by its pid in a ``finally`` (also when it fails).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent
DASK = BIN / "dask"

# 3 short demo services (7 days of history): a worker's first service takes several seconds
# (imports), so a kill lands inside a running task.
FLEET = {
    "workers": 2,
    "defaults": {"mode": "demo", "demo_days": 7, "lookback_days": 7, "horizon_days": 14,
                 "baseline_days": 2, "current_days": 2, "loadtest_file": "",
                 "targets": [{"name": "Redis hit ratio", "metric": "redis_keyspace_hit_ratio",
                              "min": 0.9}],
                 "capacity": [{"name": "Redis memory", "metric": "redis_used_memory_bytes",
                               "limit": 160 * 2 ** 20}]},
    "services": [{"service": f"svc-{s}", "seed": s} for s in (1, 2, 3)],
}
VOLATILE = {"run_id", "generated_at", "duration_s", "scheduler", "started", "finished"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop one process we started, by its pid: SIGTERM, then SIGKILL after 5 s."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def _strip(obj):
    """The numbers and words of a summary, without run ids, timestamps and durations."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _results(latest: Path) -> dict:
    fleet = json.loads((latest / "fleet.json").read_text())
    out = {"fleet": _strip(fleet)}
    for svc in fleet["services"]:
        out[svc["name"]] = _strip(json.loads(
            (latest / "services" / svc["name"] / "summary.json").read_text()))
    return out


def _load_series(keys):
    """Hourly series with a clear upward trend (``short``: too little history to fit)."""
    import numpy as np
    import pandas as pd

    out = {}
    for k in keys:
        n = 10 if k == "short" else 24 * 21
        rng = np.random.default_rng(7 if k == "short" else int(k))
        t = np.arange(n)
        y = 100 + 0.05 * (0 if k == "short" else int(k)) * t + 5 * np.sin(2 * np.pi * t / 24) \
            + rng.normal(0, 1, n)
        idx = pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC")
        out[k] = (pd.Series(y, index=idx), 140.0)
    return out


def _series_rows(client, out_dir: Path) -> tuple[dict, list]:
    """fit_series_fleet of 5 series (2 a chunk): the summary and the CSV rows, by key."""
    import csv

    from capplan.runner.fleet_series import fit_series_fleet

    res = fit_series_fleet(client, _load_series, ["3", "short", "9", "12", "20"],
                           out_dir=out_dir, chunk=2, horizon=72, top=3)
    with open(out_dir / "series.csv", newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["key"])
    return res, rows


def _fleet_cmd(params: Path, outputs: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "capplan", "fleet", str(params), "--outputs", str(outputs),
            "--no-progress", *extra]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Port .* is already in use")
def test_killed_worker_on_a_real_cluster_gives_the_local_cluster_results(tmp_path):
    from dask.distributed import Client

    from capplan.runner.fleet import dask_client
    from capplan.runner.fleet_series import WORKER_ENV, profiling_workers

    params = tmp_path / "cluster-fleet.yaml"
    params.write_text(yaml.safe_dump(FLEET, sort_keys=False))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # _load_series runs on the workers, and the scheduler unpickles the task graph: its module
    # must be importable on both, as any load function's
    worker_path = {"PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                                  *filter(None, [env.get("PYTHONPATH")])])}
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = {n: open(tmp_path / f"{n}.log", "w") for n in ("scheduler", "w1", "w2", "fleet")}
    procs: dict[str, subprocess.Popen] = {}
    client = None
    try:
        procs["scheduler"] = subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard", "--no-show"], stdout=logs["scheduler"],
            stderr=subprocess.STDOUT, env={**env, **worker_path}, cwd=tmp_path)
        for w in ("w1", "w2"):   # no nanny: the worker process is the one we kill, not restarted
            procs[w] = subprocess.Popen(
                [str(DASK), "worker", address, "--name", w, "--nworkers", "1", "--nthreads", "1",
                 "--no-nanny", "--host", "127.0.0.1", "--no-dashboard",
                 "--local-directory", str(tmp_path / w), "--death-timeout", "60"],
                stdout=logs[w], stderr=subprocess.STDOUT, env={**env, **WORKER_ENV, **worker_path},
                cwd=tmp_path)
        client = Client(address, timeout=30)
        client.wait_for_workers(2, timeout=45)
        workers = client.scheduler_info()["workers"]
        by_name = {info["name"]: addr for addr, info in workers.items()}
        assert client.run(os.getpid, workers=[by_name["w1"]]) == {by_name["w1"]: procs["w1"].pid}

        procs["fleet"] = subprocess.Popen(_fleet_cmd(params, tmp_path / "cluster", "--scheduler",
                                                     address),
                                          stdout=subprocess.PIPE, stderr=logs["fleet"], text=True,
                                          env=env, cwd=tmp_path)
        # kill w1 once it has been running a service for a moment
        deadline, busy_since = time.monotonic() + 45, None
        while time.monotonic() < deadline and procs["fleet"].poll() is None:
            running = client.processing().get(by_name["w1"], [])
            busy_since = (busy_since or time.monotonic()) if running else None
            if busy_since and time.monotonic() - busy_since > 1.0:
                break
            time.sleep(0.1)
        assert busy_since, "w1 never ran a service (fleet ended or timed out before)"
        killed_tasks = list(client.processing().get(by_name["w1"], []))
        os.kill(procs["w1"].pid, signal.SIGKILL)
        assert procs["w1"].wait(timeout=10) == -signal.SIGKILL
        assert killed_tasks, "w1 had finished its service before the kill"
        out, _ = procs["fleet"].communicate(timeout=60)
        assert len(client.scheduler_info()["workers"]) == 1     # w1 stayed dead
        fleet_log = (tmp_path / "fleet.log").read_text()
        assert procs["fleet"].returncode == 0, fleet_log
        assert "Traceback" not in fleet_log
        sched_log = (tmp_path / "scheduler.log").read_text()
        assert "Remove worker" in sched_log and by_name["w1"] in sched_log

        cluster_latest = tmp_path / "cluster" / "cluster-fleet" / "latest"
        assert Path(out.strip().splitlines()[-1]) == cluster_latest.resolve() / "fleet.html"
        got = _results(cluster_latest)
        fleet = json.loads((cluster_latest / "fleet.json").read_text())
        assert fleet["scheduler"] == address and fleet["status"] == "ok"
        assert [s["name"] for s in fleet["services"]] == [f"svc-{s}" for s in (1, 2, 3)]
        assert all(s["status"] == "ok" and s["report"] for s in fleet["services"])
        assert (cluster_latest / ".capplan-run").is_file()

        local = subprocess.run(_fleet_cmd(params, tmp_path / "local", "--workers", "2"),
                               capture_output=True, text=True, timeout=90, env=env)
        assert local.returncode == 0, local.stderr
        want = _results(tmp_path / "local" / "cluster-fleet" / "latest")
        assert got.keys() == want.keys()
        for name in want:
            assert got[name] == want[name], f"{name} differs between the cluster and LocalCluster"

        # many series on the surviving worker, as on a LocalCluster (same rows, to the bit)
        assert profiling_workers(client) == []            # WORKER_ENV turned the profiler off
        res, rows = _series_rows(client, tmp_path / "series-cluster")
        with dask_client("", workers=1) as local_client:
            local_res, local_rows = _series_rows(local_client, tmp_path / "series-local")
        assert [r["key"] for r in rows] == ["12", "20", "3", "9", "short"]
        assert rows == local_rows
        assert rows[-1]["status"] == "refused" and rows[0]["status"] == "ok"
        assert (res["counts"], res["top"]) == (local_res["counts"], local_res["top"])
        assert res["worker_profiler_on"] == local_res["worker_profiler_on"] == 0
        assert list(res["workers"]) != list(local_res["workers"])   # really two clusters
    finally:
        if client is not None:
            client.close()
        for name in ("fleet", "w1", "w2", "scheduler"):
            if name in procs:
                _stop(procs[name])
        for f in logs.values():
            f.close()
