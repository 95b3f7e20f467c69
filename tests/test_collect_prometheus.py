"""Prometheus HTTP API collector against a real Prometheus scraping real exporters.

The module starts one stack (tests/promstack.py): Prometheus 2.42 scraping prometheus-redis-exporter
and prometheus-postgres-exporter pointed at the shared Redis/PostgreSQL, plus a loopback "static"
exporter serving NaN/+Inf values and a series that comes and goes, every 1 s.  When the Debian
binaries are missing the tests FAIL, saying to run ``.ci/install-system-deps.sh``.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
import time

import numpy as np
import pandas as pd
import pytest

from capplan.collect import create, exporters
from capplan.collect import prometheus as prom
from capplan.collect.http import scrape_metrics
from capplan.errors import ConfigError, SourceUnavailable
from capplan.core.frame import parse_labels, select, series, validate_frame
from capplan.core.rates import counter_increase, counter_rate, ratio_from_counters
from httpservers import LocalServer, SilentSocket, closed_port
from promstack import PromStack, StackError

FIX = "prometheus"


# -- pure helpers (no server) --------------------------------------------------------------------
def test_choose_step_stays_under_the_point_limit():
    day = 86400.0
    for span in (60.0, 3600.0, day, 30 * day, 400 * day):
        step = prom.choose_step(0.0, span)
        assert span / step + 1 <= prom.CHUNK_POINTS < prom.MAX_POINTS
        assert step >= 15
    assert prom.choose_step(0, 60, min_step=1) == 1
    assert prom.choose_step(0, 90 * day) == 900


def test_chunk_windows_cover_the_grid_once():
    start, step = 1_700_000_000.0, 0.5
    end = start + 25_000 * step + 0.2
    wins = prom.chunk_windows(start, end, step)
    grid = []
    for a, b in wins:
        n = round((b - a) / step) + 1
        assert n <= prom.CHUNK_POINTS
        grid += [a + i * step for i in range(n)]
    assert len(grid) == 25_001 and len(set(grid)) == len(grid)
    assert np.allclose(np.diff(grid), step)
    assert grid[0] == start and grid[-1] <= end


@pytest.mark.parametrize("text, seconds", [("15s", 15), ("1m30s", 90), ("2h", 7200), (30, 30),
                                           ("0.5", 0.5), ("250ms", 0.25)])
def test_parse_duration(text, seconds):
    assert prom.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["fast", "1x", -1, 0, "", None])
def test_parse_duration_rejects(bad):
    with pytest.raises(ConfigError, match="step"):
        prom.parse_duration(bad)


def test_unknown_metric_and_too_fine_step_are_config_errors():
    with pytest.raises(ConfigError, match="redis_keyspace_hits_total"):
        prom.fetch_history("http://127.0.0.1:1", ["redis_keyspace_hit_total"], 0, 60)
    with pytest.raises(ConfigError, match="step"):
        prom.fetch_history("http://127.0.0.1:1", ["redis_uptime_seconds"], 0, 86400 * 30,
                           step="1s")
    with pytest.raises(ConfigError, match="after start"):
        prom.fetch_history("http://127.0.0.1:1", ["redis_uptime_seconds"], 100, 50)


def test_promql_for_mappings():
    pg = exporters.by_canonical("pg_blks_hit_total")
    assert prom.exporters.promql(pg, 'job="pg"') == \
        'pg_stat_database_blks_hit{job="pg",datid!="0"}'
    mc = exporters.by_canonical("redis_maxclients")
    assert prom.exporters.promql(mc) == "redis_max_clients or redis_config_maxclients"
    cb = exporters.by_canonical("pg_client_backends")
    assert prom.exporters.promql(cb) == "sum by (instance, state) (pg_stat_activity_count)"


# -- recorded API payloads (shapes Prometheus produces that are hard to force) -------------------
@pytest.fixture(scope="module")
def replay(fixtures_dir):
    def body(name):
        return (fixtures_dir / FIX / name).read_bytes()

    js = {"Content-Type": "application/json"}
    srv = LocalServer({
        "/t503/api/v1/query_range": lambda _r: (503, js, body("api_error_503_timeout.json")),
        "/t422/api/v1/query_range": lambda _r: (422, js, body("api_error_422_execution.json")),
        "/t400/api/v1/query_range": lambda _r: (400, js, body("api_error_400_exceeded_resolution.json")),
        "/warn/api/v1/query_range": lambda _r: (200, js, body("api_success_with_warnings_nan_inf_gap.json")),
        "/html/api/v1/query_range": lambda _r: (502, {"Content-Type": "text/html"},
                                                b"<html>Bad Gateway</html>"),
    })
    yield srv
    srv.close()


def test_recorded_error_payloads_become_typed_errors(replay):
    args = (["redis_used_memory_bytes"], 1795449225.0, 1795449230.0)
    with pytest.raises(SourceUnavailable, match="timeout.*timed out") as e503:
        prom.fetch_history(replay.url("/t503"), *args, step=1)
    assert "timeout_s" in str(e503.value)
    with pytest.raises(SourceUnavailable, match="HTTP 422, execution"):
        prom.fetch_history(replay.url("/t422"), *args, step=1)
    with pytest.raises(ConfigError, match="exceeded maximum resolution"):
        prom.fetch_history(replay.url("/t400"), *args, step=1)
    with pytest.raises(SourceUnavailable, match="non-JSON"):
        prom.fetch_history(replay.url("/html"), *args, step=1)


def test_warnings_nan_inf_and_gaps_from_recorded_payload(replay):
    from datetime import datetime

    df = prom.fetch_history(replay.url("/warn"), ["redis_used_memory_bytes",
                                                  "redis_keyspace_hits_total"],
                            "2026-11-23T15:53:45+00:00", datetime(2026, 11, 23, 15, 53, 50),
                            step="1s")                       # ISO text; naive datetime = UTC
    assert replay.last_form["start"] == ["1795449225.0"]
    assert replay.last_form["end"] == ["1795449230.0"]
    validate_frame(df)
    assert df.attrs["prometheus_warnings"] == ["remote read of store 'archive' failed: partial data"]
    mem = series(df, "redis_used_memory_bytes")
    assert len(mem) == 4                                     # the missing step stays missing
    assert mem.iloc[0] == 1000 and mem.iloc[-1] == 1200
    assert mem.isna().sum() == 2                             # "NaN" and "+Inf" -> NaN
    hits = series(df, "redis_keyspace_hits_total")
    assert hits.tolist() == [10.0, 25.0]                     # counter: NaN/+Inf points dropped
    assert parse_labels(df["labels"].iloc[0]) == {"instance": "127.0.0.1:9121"}


def test_unreachable_and_silent_prometheus_fail_within_timeout():
    now = time.time()
    with pytest.raises(SourceUnavailable, match="unreachable"):
        prom.fetch_history(f"http://127.0.0.1:{closed_port()}", ["redis_uptime_seconds"],
                           now - 60, now, timeout_s=2)
    silent = SilentSocket()
    try:
        with pytest.raises(SourceUnavailable, match="timed out|timeout"):
            prom.fetch_history(silent.url(), ["redis_uptime_seconds"], now - 60, now,
                               timeout_s=0.5)
    finally:
        silent.close()
    with pytest.raises(ConfigError, match="url"):
        create("prometheus", name="p", url="127.0.0.1:9090")


def test_stack_reports_missing_binaries_with_install_hint(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(StackError, match=r"\.ci/install-system-deps\.sh"):
        PromStack("redis://127.0.0.1:6379/0", "host=127.0.0.1").start()


# -- the real stack ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def static_exporter(fixtures_dir):
    base = (fixtures_dir / FIX / "static_exporter_nan_inf.prom").read_text()
    count = {"n": 0}

    def metrics(_req):
        count["n"] += 1
        text = base
        if (count["n"] // 2) % 2 == 0:        # present for two scrapes, absent for two
            text += "# TYPE redis_connected_clients gauge\nredis_connected_clients 7\n"
        return 200, {"Content-Type": "text/plain; version=0.0.4"}, text.encode()

    srv = LocalServer({"/metrics": metrics})
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def stack(redis_url, pg_dsn, static_exporter):
    st = PromStack(redis_url, pg_dsn, scrape_interval_s=1.0,
                   extra_targets={"static": f"127.0.0.1:{static_exporter.port}"})
    try:
        st.start()
    except StackError as exc:
        pytest.fail(f"cannot start Prometheus + exporters: {exc}", pytrace=False)
    st.started = time.time()
    yield st
    st.stop()


def _wait_history(st, seconds: float) -> None:
    """Sleep until the stack has scraped for ``seconds``."""
    left = st.started + seconds - time.time()
    if left > 0:
        time.sleep(left)


# -- Must show: direct vs Prometheus for the same window (first, so later tests need no waiting) --
def _direct_sampler(stop: threading.Event, out: list, interval: float) -> None:
    col = create("redis", name="direct", url_env="CAPPLAN_TEST_PROMSTACK_REDIS_URL",
                 commandstats=False, latencystats=False, slowlog=False)
    try:
        while not stop.is_set():
            out.append(col.snapshot())
            stop.wait(interval)
    finally:
        col.close()


def _at(s: pd.Series, t: float) -> float:
    """Counter value at epoch ``t`` by linear interpolation between the samples around it."""
    x = (s.index - pd.Timestamp(0, tz="UTC")).total_seconds().to_numpy()
    return float(np.interp(t, x, s.to_numpy()))


def _window(s: pd.Series, t0: float, t1: float) -> pd.Series:
    """``s`` restricted to [t0, t1] with the end points interpolated (the same edges as Prometheus)."""
    inner = s[(s.index > pd.Timestamp(t0, unit="s", tz="UTC")) &
              (s.index < pd.Timestamp(t1, unit="s", tz="UTC"))]
    edges = pd.Series([_at(s, t0), _at(s, t1)],
                      index=pd.to_datetime([t0, t1], unit="s", utc=True))
    return pd.concat([edges.iloc[:1], inner, edges.iloc[1:]])


def _commands_per_second(s: pd.Series) -> float:
    span = (s.index[-1] - s.index[0]).total_seconds()
    return float(counter_increase(s).sum()) / span


@pytest.mark.slow
def test_direct_and_prometheus_agree_on_hit_ratio_and_commands_per_second(stack, redis_url,
                                                                          monkeypatch):
    bench = shutil.which("redis-benchmark")
    if bench is None:
        pytest.fail("redis-benchmark missing: run .ci/install-system-deps.sh (redis-tools)",
                    pytrace=False)
    from urllib.parse import urlsplit
    u = urlsplit(redis_url)
    host, port = u.hostname or "127.0.0.1", str(u.port or 6379)
    frames: list[pd.DataFrame] = []
    stop = threading.Event()
    t_begin = time.time()
    monkeypatch.setenv("CAPPLAN_TEST_PROMSTACK_REDIS_URL", redis_url)
    th = threading.Thread(target=_direct_sampler, args=(stop, frames, 0.25), daemon=True)
    th.start()
    time.sleep(2.5)
    common = [bench, "-h", host, "-p", port, "--dbnum", "9", "-c", "4", "-q"]
    if u.password:                                     # a password-protected test server
        common += (["--user", u.username] if u.username else []) + \
            ["-a", u.password, "--no-auth-warning"]
    # SET keys 0..999, then GET over 0..1999: about half the lookups hit
    subprocess.run(common + ["-t", "set", "-n", "20000", "-r", "1000"], check=True,
                   capture_output=True, timeout=120)
    subprocess.run(common + ["-t", "get", "-n", "40000", "-r", "2000"], check=True,
                   capture_output=True, timeout=120)
    # quiet margins: the first/last evaluation's scrape may lag it by up to 2 s (scrape + step)
    time.sleep(3.0)
    stop.set()
    th.join(timeout=10)
    t_stop = time.time()
    time.sleep(1.5)                                   # let Prometheus scrape past the end

    start, end = t_begin + 1.5, t_stop - 0.3
    names = ["redis_keyspace_hits_total", "redis_keyspace_misses_total",
             "redis_commands_processed_total"]
    pdf = prom.fetch_history(stack.prometheus_url, names, start, end, step=1,
                             selector={"job": "redis"})
    validate_frame(pdf)
    # The scrape times behind the first and last evaluation: the window both paths measure.
    ts_series, _ = prom.query_range(stack.prometheus_url,
                                    'timestamp(redis_commands_processed_total{job="redis"})',
                                    start, end, 1)
    scrape_times = [float(v) for _t, v in ts_series[0]["values"]]
    s0, s1 = scrape_times[0], scrape_times[-1]

    ddf = pd.concat(frames, ignore_index=True)
    validate_frame(ddf)
    first, last = ddf["timestamp"].min().timestamp(), ddf["timestamp"].max().timestamp()
    assert first <= s0 < s1 <= last                    # interpolation, never extrapolation
    d = {n: _window(series(ddf, n), s0, s1) for n in names}
    p = {n: series(pdf, n) for n in names}

    rd = ratio_from_counters(d["redis_keyspace_hits_total"], d["redis_keyspace_misses_total"])
    rp = ratio_from_counters(p["redis_keyspace_hits_total"], p["redis_keyspace_misses_total"])
    cd = _commands_per_second(d["redis_commands_processed_total"])
    cp = _commands_per_second(p["redis_commands_processed_total"])
    print(f"window {s1 - s0:.1f}s  hit ratio direct {rd.value:.4f} (n={rd.n:.0f}) "
          f"prometheus {rp.value:.4f} (n={rp.n:.0f})  commands/s direct {cd:.1f} "
          f"prometheus {cp:.1f}")
    assert rd.n >= 40_000 and rp.n >= 40_000           # all the benchmark's GETs are in the window
    assert 0.2 < rd.value < 0.9                        # a ratio that can disagree
    assert abs(rd.value - rp.value) <= 0.02            # within 2 percentage points
    assert abs(cd - cp) <= 0.02 * cd                   # within 2 %
    assert not math.isnan(rd.lo95) and rd.lo95 <= rd.value <= rd.hi95


def test_fetch_history_maps_exporters_onto_capplan_names(stack):
    _wait_history(stack, 4)
    end = time.time()
    df = prom.fetch_history(stack.prometheus_url, None, end - 4, end, step=1,
                            selector='job=~"redis|postgres"')
    validate_frame(df)
    assert set(df["source"]) == {"prometheus"}
    for m in ("redis_keyspace_hits_total", "redis_commands_processed_total", "redis_maxclients",
              "redis_db_keys", "pg_xact_commit_total", "pg_client_backends",
              "pg_usable_connections", "pg_database_size_bytes"):
        assert m in set(df["metric"]), m
    for m in exporters.MAPPINGS:                              # kind/unit from the mapping
        rows = select(df, m.canonical)
        if len(rows):
            assert set(rows["kind"]) == {m.kind} and set(rows["unit"]) == {m.unit}, m.canonical
    assert "node_cpu_seconds_total" in df.attrs["missing_metrics"]
    assert df.attrs["step_s"] == 1
    hits = select(df, "redis_keyspace_hits_total")
    assert {parse_labels(t)["instance"] for t in hits["labels"]} == \
        {f"127.0.0.1:{stack.ports['redis_exporter']}"}
    db = {parse_labels(t)["datname"] for t in select(df, "pg_blks_hit_total")["labels"]}
    assert "" not in db and "test" in db                       # datid 0 row excluded
    usable = select(df, "pg_usable_connections")["value"]
    mx = select(df, "pg_max_connections")["value"]
    su = select(df, "pg_superuser_reserved_connections")["value"]
    assert usable.iloc[-1] == mx.iloc[-1] - su.iloc[-1]
    # counters arrive raw: never decreasing inside the window here, and capplan rates apply
    cmds = series(df, "redis_commands_processed_total")
    assert (np.diff(cmds.to_numpy()) >= 0).all()
    assert (counter_rate(cmds) >= 0).all()


def test_real_error_payloads(stack):
    now = time.time()
    with pytest.raises(ConfigError, match="bad_data.*parse error"):
        prom.fetch_history(stack.prometheus_url, ["redis_uptime_seconds"], now - 5, now, step=1,
                           selector='job=~"("')
    with pytest.raises(SourceUnavailable, match="422, execution.*same labelset"):
        prom.query_range(stack.prometheus_url, 'label_replace(redis_db_keys, "db", "x", "db", ".*")',
                         now - 5, now, 1)
    with pytest.raises(SourceUnavailable, match="non-JSON"):   # an exporter is not Prometheus
        prom.fetch_history(f"http://127.0.0.1:{stack.ports['redis_exporter']}",
                           ["redis_uptime_seconds"], now - 5, now, step=1)


def test_nan_inf_and_missing_points_through_real_prometheus(stack):
    _wait_history(stack, 9)
    end = time.time()
    names = ["redis_mem_fragmentation_ratio", "redis_used_memory_bytes",
             "redis_used_memory_rss_bytes", "redis_keyspace_hits_total",
             "redis_keyspace_misses_total", "redis_blocked_clients", "redis_connected_clients"]
    df = prom.fetch_history(stack.prometheus_url, names, end - 7, end, step=1,
                            selector={"job": "static"})
    validate_frame(df)
    for gauge in ("redis_mem_fragmentation_ratio", "redis_used_memory_bytes",
                  "redis_used_memory_rss_bytes"):                # NaN, +Inf, -Inf -> NaN
        s = series(df, gauge)
        assert len(s) >= 6 and s.isna().all(), gauge
    assert set(df.attrs["missing_metrics"]) == {"redis_keyspace_hits_total",
                                                "redis_keyspace_misses_total"}
    assert (series(df, "redis_blocked_clients") == 2).all()
    flapping = series(df, "redis_connected_clients")
    assert 1 <= len(flapping) < len(series(df, "redis_blocked_clients"))   # absent, not NaN
    assert (flapping == 7).all()


def test_collector_snapshot_from_prometheus(stack):
    _wait_history(stack, 3)
    col = create("prometheus", name="prometheus", url=stack.prometheus_url,
                 selector={"job": "redis"})
    df = col.snapshot()
    validate_frame(df)
    assert set(df["source"]) == {"prometheus"}
    assert df["timestamp"].nunique() == 1
    assert set(df["metric"]) >= {"redis_used_memory_bytes", "redis_keyspace_hits_total",
                                 "redis_maxclients", "redis_db_keys"}
    assert not any(m.startswith("pg_") for m in df["metric"])
    assert select(df, "redis_maxclients")["value"].iloc[0] > 0
    col.close()
    nothing = create("prometheus", name="other", url=stack.prometheus_url,
                     selector='job="no-such-job"', metrics=["redis_used_memory_bytes"])
    assert nothing.source == "prometheus:other"
    with pytest.raises(SourceUnavailable, match="no series"):
        nothing.snapshot()


def test_metrics_endpoint_on_real_exporters_matches_direct_names(stack, redis_url, pg_dsn,
                                                                 monkeypatch):
    r = scrape_metrics(stack.redis_exporter_url, source="metrics:redis")
    p = scrape_metrics(stack.postgres_exporter_url, source="metrics:pg")
    validate_frame(r)
    validate_frame(p)
    monkeypatch.setenv("CAPPLAN_TEST_PROMSTACK_REDIS_URL", redis_url)
    rc = create("redis", name="same", url_env="CAPPLAN_TEST_PROMSTACK_REDIS_URL",
                commandstats=False, latencystats=False)
    try:
        direct_r = rc.snapshot()
    finally:
        rc.close()
    both = set(r["metric"]) & set(direct_r["metric"])
    assert {"redis_keyspace_hits_total", "redis_used_memory_bytes", "redis_db_keys",
            "redis_start_time_seconds"} <= both
    meta_r = r.drop_duplicates("metric").set_index("metric")
    meta_d = direct_r.drop_duplicates("metric").set_index("metric")
    for m in both:
        assert (meta_r.loc[m, "kind"], meta_r.loc[m, "unit"]) == \
            (meta_d.loc[m, "kind"], meta_d.loc[m, "unit"]), m
    assert {"pg_xact_commit_total", "pg_client_backends", "pg_usable_connections"} <= set(p["metric"])
    monkeypatch.setenv("CAPPLAN_TEST_PROMSTACK_DSN", pg_dsn)
    pg = create("postgres", name="same", dsn_env="CAPPLAN_TEST_PROMSTACK_DSN", tables_limit=0,
                statements_top=0)
    try:
        direct_p = pg.snapshot()                           # read after the exporter's scrape
    finally:
        pg.close()
    for m in ("pg_max_connections", "pg_superuser_reserved_connections", "pg_usable_connections"):
        assert _value(p, m) == _value(direct_p, m), m
    meta_p = p.drop_duplicates("metric").set_index("metric")
    meta_dp = direct_p.drop_duplicates("metric").set_index("metric")
    for m in set(p["metric"]) & set(direct_p["metric"]):
        assert (meta_p.loc[m, "kind"], meta_p.loc[m, "unit"]) == \
            (meta_dp.loc[m, "kind"], meta_dp.loc[m, "unit"]), m
    # the same counter read twice: the direct read came later, so it is not smaller
    from psycopg.conninfo import conninfo_to_dict
    db = {"datname": conninfo_to_dict(pg_dsn).get("dbname", "postgres")}
    assert _value(direct_p, "pg_xact_commit_total", db) >= _value(p, "pg_xact_commit_total", db)


def _value(df: pd.DataFrame, metric: str, labels: dict | None = None) -> float:
    rows = select(df, metric, labels=labels)
    assert len(rows) == 1, (metric, labels, rows)
    return float(rows["value"].iloc[0])


def test_long_window_is_chunked_under_11000_points(stack):
    _wait_history(stack, 12.5)                                # runs after the slow test: no wait
    end = time.time()
    start = end - 12.0
    step = 0.001                                               # 12,001 points > 11,000
    df = prom.fetch_history(stack.prometheus_url, ["redis_uptime_seconds"], start, end,
                            step=step, selector={"job": "redis"})
    s = series(df, "redis_uptime_seconds")
    assert len(s) == 12_001 and s.index.is_unique and s.index.is_monotonic_increasing
    assert np.allclose(np.diff((s.index - s.index[0]).total_seconds()), step, atol=1e-4)
    with pytest.raises(ConfigError, match="1 ms resolution"):
        prom.fetch_history(stack.prometheus_url, ["redis_uptime_seconds"], start, end,
                           step=0.0002)
    # the same query unchunked is refused by Prometheus itself
    with pytest.raises(ConfigError, match="exceeded maximum resolution of 11,000"):
        prom._call(stack.prometheus_url, "/api/v1/query_range",
                   {"query": "redis_uptime_in_seconds", "start": repr(start), "end": repr(end),
                    "step": repr(step)}, timeout_s=10)


def test_collector_basic_auth_from_env_never_leaks_the_password(monkeypatch):
    seen = {}

    def query(req):
        seen["auth"] = req.headers.get("Authorization")
        body = (b'{"status":"success","data":{"resultType":"vector","result":[{"metric":'
                b'{"__name__":"redis_memory_used_bytes","instance":"a:9121","job":"redis"},'
                b'"value":[1795449225.0,"123"]}]}}')
        return 200, {"Content-Type": "application/json"}, body

    srv = LocalServer({"/api/v1/query": query})
    try:
        monkeypatch.setenv("CAPPLAN_TEST_PROM_URL", f"http://mon:pr0m-pw@127.0.0.1:{srv.port}")
        col = create("prometheus", name="auth", url_env="CAPPLAN_TEST_PROM_URL",
                     metrics=["redis_used_memory_bytes"])
        df = col.snapshot()
        assert seen["auth"] == "Basic bW9uOnByMG0tcHc="          # base64("mon:pr0m-pw")
        assert df["value"].tolist() == [123.0]
        assert "pr0m-pw" not in repr(col) + df.to_csv()
        monkeypatch.setenv("CAPPLAN_TEST_PROM_URL", f"http://mon:pr0m-pw@127.0.0.1:{closed_port()}")
        with pytest.raises(SourceUnavailable) as err:
            col.snapshot()
        assert "pr0m-pw" not in str(err.value)
        monkeypatch.delenv("CAPPLAN_TEST_PROM_URL")
        with pytest.raises(ConfigError, match="CAPPLAN_TEST_PROM_URL"):
            col.snapshot()
    finally:
        srv.close()


# -- PromQL queries: params checks without a server (collect.promql) ---------------------------
def test_query_entries_are_checked_with_their_key():
    from capplan.collect import promql

    qs = promql.parse_queries([{"name": "api_rate", "promql": "sum(rate(x_total[5m]))",
                                "unit": "requests/s"},
                               {"name": "jobs_total", "promql": "x_total", "kind": "counter",
                                "unit": "jobs"}])
    assert [(q.name, q.unit, q.kind) for q in qs] == [("api_rate", "requests_per_second", "gauge"),
                                                      ("jobs_total", "jobs", "counter")]
    for bad, match in (
        ([{"name": "Api-Rate", "promql": "x"}], r"queries\[0\]\.name.*snake_case"),
        ([{"name": "a", "promql": ""}], r"queries\[0\]\.promql"),
        ([{"name": "a", "promql": "x", "unit": "furlongs"}], r"queries\[0\]\.unit.*unknown unit"),
        ([{"name": "a", "promql": "x", "kind": "counter"}], r"must end in _total"),
        ([{"name": "a", "promql": "x"}, {"name": "a", "promql": "y"}], r"used twice"),
        ([{"name": "a", "promql": "x", "step": 5}], r"unknown key"),
    ):
        with pytest.raises(ConfigError, match=match):
            promql.parse_queries(bad)
    with pytest.raises(ConfigError, match=r"did you mean days"):
        promql.validate_queries({"dayz": 3})
    with pytest.raises(ConfigError, match="unknown preset"):
        promql.preset_queries(["mysql"])


def test_windows_fractional_days_and_start_end():
    import pandas as pd

    from capplan.collect import promql

    now = pd.Timestamp("2026-11-01T00:00Z")
    start, end, days = promql.resolve_window({"days": 0.01}, now=now)
    assert end == now and (end - start) == pd.Timedelta(minutes=14.4) and days == pytest.approx(0.01)
    start, end, days = promql.resolve_window({"start": "2026-10-01T00:00:00Z",
                                              "end": 1793491200}, now=now)
    assert start == pd.Timestamp("2026-10-01T00:00Z") and days == pytest.approx(31.0)   # October
    with pytest.raises(ConfigError, match="must be after"):
        promql.resolve_window({"start": "2026-11-02", "end": "2026-11-01"}, now=now)
    with pytest.raises(ConfigError, match="days must be positive"):
        promql.resolve_window({"days": 0}, now=now)
    assert promql._step("auto", 15, 0, 864) == 15.0 and promql._step(None, "1s", 0, 60) == 1.0
    assert promql._step("1m", 15, 0, 864) == 60.0


def test_validate_queries_needs_the_url_variable(monkeypatch):
    from capplan.collect import promql

    monkeypatch.delenv("CAPPLAN_UNSET_PROM", raising=False)
    assert promql.validate_queries({"url_env": "CAPPLAN_UNSET_PROM"}) == []   # nothing to parse
    with pytest.raises(ConfigError, match="CAPPLAN_UNSET_PROM is not set"):
        promql.validate_queries({"url_env": "CAPPLAN_UNSET_PROM",
                                 "queries": [{"name": "a", "promql": "up"}]})
