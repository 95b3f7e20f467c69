"""The sampling loop: batches, gaps, slow sources, clean stops, the CLI verb, and a short live
collection under load against real servers (bench/live_collection.py runs the 60 s version)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from capplan.cli import main as cli_main
from capplan.collect._common import build_frame
from capplan.collect.loop import build_collectors, collect, collect_settings
from capplan.errors import ConfigError, SourceUnavailable, StoreError
from capplan.core.frame import concat_frames, labels_key, validate_frame
from capplan.store import open_store
from fixtures.collect.servers import PrivateRedis

ROOT = Path(__file__).resolve().parents[1]


class ListStore:
    """The smallest thing with ``append``: keeps every batch."""

    def __init__(self, fail_times: int = 0):
        self.batches: list[pd.DataFrame] = []
        self.fail_times = fail_times

    def append(self, frame):
        if self.fail_times:
            self.fail_times -= 1
            raise StoreError("disk full (simulated)")
        self.batches.append(validate_frame(frame))
        return len(frame)

    @property
    def frame(self):
        return concat_frames(self.batches)


class Counting:
    """A deterministic in-process source: one counter; fails or stalls on chosen calls."""

    def __init__(self, name, fail_on=(), stall_on=(), stall_s=0.0):
        self.name, self.source = name, f"test:{name}"
        self.calls = 0
        self.fail_on, self.stall_on, self.stall_s = set(fail_on), set(stall_on), stall_s
        self.notes = []
        self.closed = False

    def snapshot(self):
        self.calls += 1
        if self.calls in self.stall_on:
            time.sleep(self.stall_s)
        if self.calls in self.fail_on:
            raise SourceUnavailable("refused (simulated)", source=self.source)
        return build_frame(time.time(), self.source,
                           [("test_ops_total", None, float(self.calls), "counter", "operations")])

    def close(self):
        self.closed = True


def _up(frame, source):
    rows = frame[(frame.metric == "capplan_collect_up")
                 & (frame.labels == labels_key({"source": source}))]
    return rows.sort_values("timestamp").value.tolist()


def test_rounds_batches_and_a_failing_source_recorded_as_gap():
    good, bad = Counting("good"), Counting("bad", fail_on={2, 3})
    store = ListStore()
    res = collect([good, bad], store, duration_s=0.5, interval_s=0.1, batch_size=4,
                  progress=False)
    f = store.frame
    assert res.rounds == res.rounds_planned == 5
    assert res.samples_written == len(f) and len(store.batches) == res.batches_written > 1
    assert (f.metric == "test_ops_total").sum() == 5 + 3
    assert _up(f, "test:bad") == [1, 0, 0, 1, 1] and _up(f, "test:good") == [1] * 5
    assert res.sources["test:bad"] == {"ok": 3, "failed": 2}
    assert [x["source"] for x in res.failures] == ["test:bad"] * 2
    assert "refused (simulated)" in res.failures[0]["error"] and res.degraded
    assert not good.closed   # the caller owns the collectors
    json.dumps(res.to_dict())


def test_slow_source_is_a_gap_but_its_late_frame_is_kept():
    slow = Counting("slow", stall_on={1}, stall_s=0.35)
    store = ListStore()
    res = collect([slow, Counting("fast")], store, duration_s=0.6, interval_s=0.1,
                  progress=False)
    f = store.frame
    ups = _up(f, "test:slow")
    assert ups[0] == 0 and ups[-1] == 1 and 0 in ups[1:3]
    # every read that returned, late or not, is in the store
    assert (f[f.source == "test:slow"].metric == "test_ops_total").sum() == slow.calls
    assert any("slower than the interval" in x["error"] or "no answer" in x["error"]
               for x in res.failures)


def test_slow_read_that_then_fails_keeps_its_reason():
    """A read that misses its round and then raises: the gap is counted once, and the failure
    list says why it failed, not only that it was late (the reason used to be dropped)."""
    late = Counting("late", fail_on={1}, stall_on={1}, stall_s=0.25)
    res = collect([late], ListStore(), duration_s=0.1, interval_s=0.1, progress=False)
    assert res.rounds == 1 and res.sources["test:late"] == {"ok": 0, "failed": 1}
    errors = [x["error"] for x in res.failures]
    assert any("no answer" in e for e in errors), errors
    assert any("refused (simulated)" in e and "after its round" in e for e in errors), errors


def test_stop_event_ends_early_and_everything_is_written():
    stop = threading.Event()
    store = ListStore()
    threading.Timer(0.35, stop.set).start()
    res = collect([Counting("a")], store, duration_s=30, interval_s=0.1, progress=False,
                  stop_event=stop, batch_size=10_000)
    assert res.interrupted and 2 <= res.rounds < res.rounds_planned
    assert res.samples_written == len(store.frame) == 3 * res.rounds   # sample, up, duration


def test_sigterm_stops_cleanly_from_the_main_thread():
    store = ListStore()
    before = signal.getsignal(signal.SIGTERM)
    threading.Timer(0.35, os.kill, (os.getpid(), signal.SIGTERM)).start()
    res = collect([Counting("a")], store, duration_s=30, interval_s=0.1, progress=False)
    assert res.interrupted and res.rounds >= 2
    assert (store.frame.metric == "test_ops_total").sum() == res.rounds
    assert signal.getsignal(signal.SIGTERM) is before   # handler restored


def test_store_failure_is_retried_then_raised_at_the_end():
    store = ListStore(fail_times=1)
    res = collect([Counting("a")], store, duration_s=0.3, interval_s=0.1, batch_size=2,
                  progress=False)
    assert res.samples_written == len(store.frame) == 9   # the failed batch went in later
    with pytest.raises(StoreError, match="could not be written"):
        collect([Counting("a")], ListStore(fail_times=99), duration_s=0.1, interval_s=0.1,
                progress=False)


def test_bad_arguments_and_params():
    with pytest.raises(ConfigError, match="unique"):
        collect([Counting("a"), Counting("a")], ListStore(), duration_s=1, progress=False)
    with pytest.raises(ConfigError, match="interval_s"):
        collect([Counting("a")], ListStore(), duration_s=1, interval_s=0, progress=False)
    with pytest.raises(ConfigError, match=r"sources\[0\]\.url.*inline password") as ei:
        build_collectors([{"source": "redis", "url": "redis://:pw-9x@h:6379"}], path="p.yaml")
    assert "pw-9x" not in str(ei.value) and "p.yaml" in str(ei.value)
    with pytest.raises(ConfigError, match="unknown source"):
        build_collectors([{"source": "mongo"}])
    assert collect_settings({"collect_interval_s": 5, "store": "s.sqlite"}, duration_s=9) == \
        {"duration_s": 9.0, "interval_s": 5.0, "batch_size": 5000, "store": "s.sqlite"}


def test_cli_collect_with_password_never_writes_it(tmp_path, monkeypatch, capsys, pg_dsn):
    secret = "Cli-Secret-4242"
    srv = PrivateRedis(password=secret)
    try:
        monkeypatch.setenv("CAP_CLI_REDIS", srv.url)
        monkeypatch.setenv("CAP_CLI_PG", pg_dsn)
        params = tmp_path / "local.yaml"
        params.write_text(
            f"store: {tmp_path / 'm.sqlite'}\n"
            "sources:\n"
            "  - {source: redis, name: cache, url_env: CAP_CLI_REDIS}\n"
            "  - {source: postgres, name: app, dsn_env: CAP_CLI_PG, statements_top: 0}\n"
            "  - {source: redis, name: wrong, url_env: CAP_CLI_WRONG, timeout_s: 1}\n")
        monkeypatch.setenv("CAP_CLI_WRONG", f"redis://:{secret}x@127.0.0.1:{srv.port}/0")
        code = cli_main(["collect", str(params), "--duration", "2", "--interval", "1",
                         "--no-progress"])
        out, err = capsys.readouterr()
    finally:
        srv.stop()
    assert code == 3   # degraded: the 'wrong' source failed every round, the others did not
    res = json.loads(out.strip().splitlines()[-1])
    assert res["rounds"] == 2 and res["sources"]["redis:cache"] == {"ok": 2, "failed": 0}
    assert res["sources"]["redis:wrong"]["failed"] == 2
    with open_store(tmp_path / "m.sqlite") as store:
        f = store.query()
    assert len(f) == res["samples_written"]
    assert {"redis:cache", "postgres:app", "capplan"} <= set(f.source)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in out and secret not in err


def test_local_params_example_collects_through_the_standard_environment(
        tmp_path, monkeypatch, capsys, pg_dsn, redis_url, fixtures_dir):
    import psycopg

    d = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    for key, var in {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER",
                     "dbname": "PGDATABASE", "password": "PGPASSWORD"}.items():
        if d.get(key):
            monkeypatch.setenv(var, str(d[key]))
    monkeypatch.setenv("REDIS_URL", redis_url)
    store = tmp_path / "local.sqlite"
    code = cli_main(["collect", str(fixtures_dir / "collect" / "params_local.yaml"),
                     "--duration", "1", "--store", str(store), "--no-progress"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and res["sources"] == {"redis:cache": {"ok": 1, "failed": 0},
                                            "postgres:app": {"ok": 1, "failed": 0}}
    with open_store(store) as s:
        assert len(s.query()) == res["samples_written"]


def test_cli_collect_unusable_params_exit_2(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text("sources: []\n")
    assert cli_main(["collect", str(p), "--store", str(tmp_path / "s.sqlite")]) == 2
    assert "sources" in capsys.readouterr().err


@pytest.mark.slow
def test_short_live_collection_under_load_with_resets(tmp_path, pg_dsn, redis_url):
    spec = importlib.util.spec_from_file_location("live_collection",
                                                  ROOT / "bench" / "live_collection.py")
    live = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(live)
    f = live.run_live(duration_s=8, interval_s=1, workdir=str(tmp_path), progress=False)
    assert f["failures"] == 0 and f["rounds"] == 8
    assert f["every_sample_in_store"] and f["samples_in_store"] > 8 * 100
    assert f["rounds_per_source"] == {"capplan": 8, "postgres:live": 8, "redis:live": 8}
    assert f["counter_series"] > 30 and f["negative_rates"] == 0
    assert f["redis_reset_flag_after_resetstat"] and f["pg_stats_reset_seen"]
    assert f["redis_commands_per_s_median"] > 0


def test_ctrl_c_on_the_cli_keeps_everything_collected(tmp_path, redis_url, python_exe):
    import subprocess
    import uuid

    import redis

    name = f"sigint{uuid.uuid4().hex[:8]}"
    params = tmp_path / "p.yaml"
    params.write_text(f"sources:\n  - {{source: redis, name: {name}, url_env: CAP_SIGINT_REDIS}}\n")
    store = tmp_path / "s.sqlite"
    proc = subprocess.Popen([python_exe, "-m", "capplan", "collect", str(params), "--duration",
                             "60", "--interval", "0.2", "--store", str(store), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CAP_SIGINT_REDIS": redis_url})
    watcher = redis.Redis.from_url(redis_url)
    deadline = time.time() + 30
    # the collector's connection (client name capplan-<name>) exists once the first round has
    # started, and the signal handlers are installed before that: the round completes
    while time.time() < deadline and proc.poll() is None:
        if any(c.get("name") == f"capplan-{name}" for c in watcher.client_list()):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err[-2000:]
    res = json.loads(out.strip().splitlines()[-1])
    assert res["interrupted"] and 1 <= res["rounds"] < res["rounds_planned"] == 300
    with open_store(store) as s:
        assert len(s.query()) == res["samples_written"] > 0


def test_issue10_item9_kill_9_of_collect_loses_at_most_one_interval(tmp_path, redis_url, python_exe):
    """A SIGKILLed ``capplan collect`` keeps every round but the one in flight: each round is
    appended to the store when it ends (it used to wait for a 5000-row batch and lose it all)."""
    import subprocess
    import uuid

    interval = 0.5
    name = f"kill9{uuid.uuid4().hex[:8]}"
    params = tmp_path / "p.yaml"
    params.write_text(f"sources:\n  - {{source: redis, name: {name}, url_env: CAP_KILL9_REDIS}}\n")
    store = tmp_path / "s.sqlite"
    proc = subprocess.Popen([python_exe, "-m", "capplan", "collect", str(params), "--duration",
                             "60", "--interval", str(interval), "--store", str(store),
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "CAP_KILL9_REDIS": redis_url})

    def stored_rounds() -> list:
        if not store.exists():
            return []
        with open_store(store) as s:
            up = s.query("capplan_collect_up")
        return sorted(up.timestamp.unique())

    try:
        deadline = time.time() + 20
        first = []
        while time.time() < deadline and proc.poll() is None and not first:
            first = stored_rounds()   # rows reach the store while collection runs
            time.sleep(0.1)
        assert first, "no round reached the store within 20 s of collecting"
        time.sleep(8 * interval)
    finally:
        proc.kill()   # SIGKILL: no handler, no final flush
        proc.wait(timeout=10)
    killed_at = pd.Timestamp.now(tz="UTC")
    assert proc.returncode == -signal.SIGKILL
    rounds = stored_rounds()
    # 8 intervals passed after the first stored round: at most the round in flight is lost
    assert len(rounds) >= len(first) + 8 - 2, (len(first), len(rounds))
    assert (killed_at - rounds[-1]).total_seconds() <= 2 * interval + 0.5
    with open_store(store) as s:
        frame = s.query(source=f"redis:{name}")
    assert frame.timestamp.nunique() >= len(rounds) - 1   # the source's samples, not only up
