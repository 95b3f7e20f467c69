"""Reliability of scheduled runs (issue 7 item 5), with real processes:

* two collector processes (real Redis collectors on the shared Redis) writing one SQLite store;
* ``kill -9`` during ``capplan run`` leaves the previous report, ``latest`` and the store intact
  and no half-visible run folder (only a ``.partial`` one);
* a read-only and a full outputs directory give a clear error (exit 1, message and hint, no
  traceback);
* two concurrent runs of the same params: the second exits with the lock message, or waits and
  then runs.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from capplan.store import open_store

ROOT = Path(__file__).resolve().parents[1]


def _capplan(*args, **kw) -> list[str]:
    return [sys.executable, "-m", "capplan", *map(str, args)]


# ---- two collectors, one SQLite store ---------------------------------------------------------

_COLLECTOR = textwrap.dedent("""
    import json, os, sys, time
    from capplan.collect.loop import build_collectors, collect
    from capplan.store import open_store
    path, name, go = sys.argv[1], sys.argv[2], sys.argv[3]
    collectors = build_collectors([{"source": "redis", "name": name,
                                    "url_env": "CAPPLAN_RELIABILITY_REDIS", "timeout_s": 2}])
    while not os.path.exists(go):
        time.sleep(0.005)
    with open_store(path, busy_timeout_s=30) as store:
        res = collect(collectors, store, duration_s=5.0, interval_s=0.5, batch_size=20,
                      progress=False)
    for c in collectors:
        c.close()
    print(json.dumps(res.to_dict()))
""")


def test_two_collector_processes_write_one_sqlite_store(tmp_path, redis_url, python_exe):
    script, path, go = tmp_path / "collector.py", tmp_path / "shared.sqlite", tmp_path / "go"
    script.write_text(_COLLECTOR)
    env = {**os.environ, "CAPPLAN_RELIABILITY_REDIS": redis_url}
    procs = {name: subprocess.Popen([python_exe, str(script), str(path), name, str(go)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=env)
             for name in ("cache-a", "cache-b")}
    time.sleep(0.5)
    go.write_text("")
    results = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results[name] = json.loads(out.strip().splitlines()[-1])
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with open_store(path) as store:
        ser = store.series()
        for name, res in results.items():
            ok = res["sources"][f"redis:{name}"]["ok"]
            assert res["rounds"] >= 8 and ok >= 5, res
            assert res["batches_written"] > 1          # several appends, interleaved with the other
            mine = ser[ser["source"] == f"redis:{name}"]
            assert len(mine) > 10
            assert (mine["n"] >= ok).all(), mine[["metric", "n"]]
            # every sample either process wrote is in the store: nothing lost to the other writer
            own = ser[(ser["source"] == "capplan")
                      & ser["labels"].str.contains(f'redis:{name}"', regex=False)]
            assert int(mine["n"].sum()) + int(own["n"].sum()) == res["samples_written"]


# ---- runs: a small fast params file ------------------------------------------------------------

@pytest.fixture
def fast_params(tmp_path) -> Path:
    """The demo report on 14 days, no load test, with a store outside the run folder."""
    p = tmp_path / "params" / "fastdemo.yaml"
    p.parent.mkdir()
    raw = yaml.safe_load((ROOT / "params" / "demo.yaml").read_text())
    raw.update(demo_days=14, lookback_days=14, horizon_days=30, baseline_days=3, current_days=3,
               loadtest_file="", store=str(tmp_path / "store" / "metrics.sqlite"))
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


def _store_state(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with open_store(path) as s:
        ser = s.series()
    return sorted(zip(ser["source"], ser["metric"], ser["labels"], ser["n"]))


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc), e.g. the kernels papermill started."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


@pytest.mark.slow
def test_kill_9_during_a_run_keeps_the_previous_report_and_the_store(fast_params, tmp_path):
    out = tmp_path / "outputs"
    first = subprocess.run(_capplan("run", fast_params, "--outputs", out), capture_output=True,
                           text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    name_dir = out / "fastdemo"
    good = (name_dir / "latest").resolve()
    report = (good / "report.html").read_bytes()
    summary = (good / "summary.json").read_bytes()
    store_path = tmp_path / "store" / "metrics.sqlite"
    before = _store_state(store_path)

    proc = subprocess.Popen(_capplan("run", fast_params, "--outputs", out), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        # kill once the run is inside its first notebook (appending the demo history)
        while not list(name_dir.glob(".*.partial/01-collect.ipynb")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the second run never started its first notebook"
            time.sleep(0.05)
        time.sleep(2.0)
    finally:
        victims = _descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)     # kill -9 the run's process group ...
        for pid in victims:                      # ... and the kernel papermill started
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    assert (name_dir / "latest").resolve() == good
    assert (good / "report.html").read_bytes() == report
    assert (good / "summary.json").read_bytes() == summary
    finished = [p for p in name_dir.iterdir() if not p.name.startswith(".") and p.name != "latest"]
    assert finished == [good], "a killed run must not appear under a final name"
    assert len(list(name_dir.glob(".*.partial"))) == 1
    # the store is consistent and holds exactly what the good run left (re-appends replace)
    assert _store_state(store_path) == before
    # the kernel released the dead run's lock: a new run can start at once
    from capplan.runner.run import RunLock

    with RunLock(name_dir, wait_s=0):
        pass


@pytest.mark.slow
def test_two_concurrent_runs_of_the_same_params(fast_params, tmp_path):
    out = tmp_path / "outputs"
    a = subprocess.Popen(_capplan("run", fast_params, "--outputs", out), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    name_dir = out / "fastdemo"
    deadline = time.monotonic() + 120
    while not list(name_dir.glob(".*.partial")):
        assert a.poll() is None, a.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    busy = subprocess.run(_capplan("run", fast_params, "--outputs", out, "--wait", "0"),
                          capture_output=True, text=True, timeout=120)
    assert busy.returncode == 1
    assert "holds the lock" in busy.stderr and "--wait" in busy.stderr
    assert "Traceback" not in busy.stderr
    queued = subprocess.Popen(_capplan("run", fast_params, "--outputs", out, "--wait", "600"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    a_out, a_err = a.communicate(timeout=600)
    q_out, q_err = queued.communicate(timeout=600)
    assert a.returncode == 0, a_err
    assert queued.returncode == 0, q_err
    runs = sorted(p for p in name_dir.iterdir() if not p.name.startswith(".") and p.name != "latest")
    assert len(runs) == 2                                   # the waiting run ran after the first
    assert (name_dir / "latest").resolve() == Path(q_out.strip()).parent
    m = [json.loads((r / "manifest.json").read_text()) for r in runs]
    assert m[0]["finished"] <= m[1]["started"]              # never overlapping


# ---- unwritable outputs ------------------------------------------------------------------------

@contextmanager
def read_only_dir(path: Path):
    """A directory nobody can write into: mode 0555, or (as root, who ignores modes) immutable."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    res = subprocess.run([chattr or "chattr", "+i", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(f"running as root and cannot make {path} immutable ({res.stderr.strip()}); "
                    "run the tests as a normal user", pytrace=False)
    try:
        yield path
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def _assert_clear_error(res: subprocess.CompletedProcess, verb: str = "run") -> None:
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines[0].startswith(f"capplan {verb}: cannot"), res.stderr
    assert "how to fix:" in res.stderr and len(lines) <= 2, res.stderr


def test_read_only_outputs_directory_gives_a_clear_error(tmp_path):
    with read_only_dir(tmp_path / "ro") as ro:
        res = subprocess.run(_capplan("run", ROOT / "params" / "demo.yaml", "--outputs", ro),
                             capture_output=True, text=True, timeout=120)
        fleet = subprocess.run(_capplan("fleet", ROOT / "params" / "fleets" / "fleet-demo.yaml",
                                        "--outputs", ro, "--no-progress"),
                               capture_output=True, text=True, timeout=120)
        assert not any(ro.iterdir())
    _assert_clear_error(res)
    assert "writable" in res.stderr
    _assert_clear_error(fleet, "fleet")


def test_full_outputs_directory_gives_a_clear_error(tmp_path):
    """RLIMIT_FSIZE makes every write past 16 KiB fail with EFBIG, as on a full disk (Python
    ignores SIGXFSZ, so the write raises instead of killing the process)."""
    out = tmp_path / "outputs"

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

    res = subprocess.run(_capplan("run", ROOT / "params" / "demo.yaml", "--outputs", out),
                         capture_output=True, text=True, timeout=120, preexec_fn=small_files)
    _assert_clear_error(res)
    assert "disk space" in res.stderr
    assert not (out / "demo" / "latest").exists()
    assert not [p for p in (out / "demo").iterdir() if not p.name.startswith(".")]
