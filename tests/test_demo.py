"""capplan.collect.demo: the SYNTHETIC demo history is deterministic, valid and shaped as documented."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from capplan.collect import demo
from capplan.cli import main
from capplan.errors import ConfigError
from capplan.core.frame import COLUMNS, SERIES_KEY, labels_key, make_frame, validate_frame

N_SERIES = len(demo.DEMO_SERIES)
SAMPLES = 90 * 288
END = pd.Timestamp("2026-11-01T00:00:00Z")
MIB = 2 ** 20


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return demo.generate_demo()


@pytest.fixture(scope="module")
def by_series(frame) -> dict:
    """(metric, labels text) -> value Series on its timestamps, split once for all tests."""
    return {(m, lab): g.set_index("timestamp")["value"]
            for (m, lab), g in frame.groupby(["metric", "labels"], sort=False)}


def s(by_series, metric, **labels) -> pd.Series:
    return by_series[(metric, labels_key(labels))]


def step_rate(counter: pd.Series) -> pd.Series:
    """Per-second increase between samples, dropping the first sample and any reset."""
    d = counter.diff().iloc[1:]
    return d[d >= 0] / 300.0


def last_days(x: pd.Series, days: int) -> pd.Series:
    return x[x.index >= END - pd.Timedelta(days=days)]


def first_days(x: pd.Series, days: int) -> pd.Series:
    return x[x.index < x.index[0] + pd.Timedelta(days=days)]


# --- determinism ----------------------------------------------------------------------------

def test_same_seed_gives_identical_frame():
    pd.testing.assert_frame_equal(demo.generate_demo(seed=3, days=7),
                                  demo.generate_demo(seed=3, days=7))


def test_different_seed_gives_different_values():
    a, b = demo.generate_demo(seed=3, days=7), demo.generate_demo(seed=4, days=7)
    assert a[list(SERIES_KEY)].equals(b[list(SERIES_KEY)])
    changed = ~np.isclose(a["value"], b["value"])
    # every noisy series changes; the constant limits do not
    assert changed.sum() > 0.5 * len(a)


def test_source_subset_gives_the_same_values_for_that_source():
    full = demo.generate_demo(days=7)
    only = demo.generate_demo(days=7, sources=["redis:cache"])
    assert set(only["source"]) == {"redis:cache"}
    expected = full[full["source"] == "redis:cache"].reset_index(drop=True)
    pd.testing.assert_frame_equal(only, expected)


# --- contract, shape, grid ------------------------------------------------------------------

def test_frame_meets_the_contract(frame):
    assert tuple(frame.columns) == COLUMNS
    validate_frame(frame)
    assert str(frame["timestamp"].dt.tz) == "UTC"


def test_shape_and_series_catalogue(frame):
    assert len(frame) == N_SERIES * SAMPLES
    keys = frame.groupby(list(SERIES_KEY), sort=False).size()
    assert len(keys) == N_SERIES == 23
    assert (keys == SAMPLES).all()
    catalogue = {(x.source, x.metric, x.labels, x.kind, x.unit) for x in demo.DEMO_SERIES}
    seen = set(frame[["source", "metric", "labels", "kind", "unit"]].itertuples(index=False,
                                                                                 name=None))
    assert seen == catalogue
    assert tuple(frame["source"].unique()) == demo.DEMO_SOURCES


def test_timestamps_sit_on_the_five_minute_grid(frame):
    ts = frame["timestamp"]
    ns = ts.astype("int64").to_numpy()
    assert (ns % (300 * 10**9) == 0).all()
    assert ts.min() == END - pd.Timedelta(days=90)
    assert ts.max() == END - pd.Timedelta(minutes=5)
    for _, g in frame.groupby(list(SERIES_KEY), sort=False):
        assert g["timestamp"].is_monotonic_increasing and g["timestamp"].is_unique


def test_values_are_finite_and_non_negative(frame):
    v = frame["value"].to_numpy()
    assert np.isfinite(v).all()
    assert (v >= 0).all()
    counts = frame.loc[frame["kind"] == "counter", "value"].to_numpy()
    assert (counts == np.round(counts)).all(), "counters count whole events"


# --- counters and the one restart -----------------------------------------------------------

def test_restart_resets_the_redis_counters_exactly_once(frame):
    for (src, metric, labels), g in frame[frame["kind"] == "counter"].groupby(list(SERIES_KEY)):
        d = g.set_index("timestamp")["value"].diff()
        down = d[d < 0]
        if src == "redis:cache":
            assert list(down.index) == [demo.RESTART_AT], metric
            after = g.set_index("timestamp")["value"][demo.RESTART_AT]
            typical = d[d > 0].median()
            assert after < typical, f"{metric} does not restart near 0"
        else:
            assert down.empty, f"{src} {metric} {labels} decreases at {list(down.index[:3])}"


def test_uptime_and_start_time_mark_the_same_restart(by_series):
    up = s(by_series, "redis_uptime_seconds")
    assert list(up.diff()[up.diff() < 0].index) == [demo.RESTART_AT]
    assert up[demo.RESTART_AT] == 100.0
    start = s(by_series, "redis_start_time_seconds")
    jumps = start.diff()[start.diff() != 0].dropna()
    assert list(jumps.index) == [demo.RESTART_AT]
    assert start[demo.RESTART_AT] == demo.RESTART_AT.timestamp() - 100
    assert demo.RESTART_AT == pd.Timestamp("2026-10-03T03:15:00Z")
    flag = s(by_series, "redis_counter_reset")
    assert list(flag[flag == 1].index) == [demo.RESTART_AT] and set(flag.unique()) == {0.0, 1.0}


# --- Redis memory ---------------------------------------------------------------------------

def test_redis_memory_grows_toward_maxmemory_and_stays_below(by_series):
    mem = s(by_series, "redis_used_memory_bytes")
    assert (s(by_series, "redis_maxmemory_bytes") == demo.REDIS_MAXMEMORY_BYTES).all()
    assert demo.REDIS_MAXMEMORY_BYTES == 268435456
    assert mem.max() < demo.REDIS_MAXMEMORY_BYTES
    assert 140 * MIB < first_days(mem, 7).mean() < 160 * MIB
    assert 205 * MIB < last_days(mem, 7).mean() < 225 * MIB
    # a straight line through the daily means reaches maxmemory weeks, not days, after the end
    daily = mem.resample("1D").mean()
    x = (daily.index - daily.index[0]).days.to_numpy(float)
    slope, icpt = np.polyfit(x, daily.to_numpy(), 1)
    cross_day = (demo.REDIS_MAXMEMORY_BYTES - icpt) / slope
    assert 90 + 14 < cross_day < 90 + 120


def test_redis_hit_ratio_is_about_093_with_a_daily_cycle(by_series):
    hits = step_rate(s(by_series, "redis_keyspace_hits_total"))
    misses = step_rate(s(by_series, "redis_keyspace_misses_total"))
    both = hits.index.intersection(misses.index)
    hits, misses = hits[both], misses[both]
    assert hits.sum() / (hits.sum() + misses.sum()) == pytest.approx(0.93, abs=0.005)
    by_hour = (hits.groupby(both.hour).sum() / (hits + misses).groupby(both.hour).sum())
    assert by_hour[14] > by_hour[2] + 0.02


def test_redis_clients_follow_load(by_series):
    clients = s(by_series, "redis_connected_clients")
    assert (clients == np.round(clients)).all() and clients.min() >= 1
    h = clients.index.hour
    assert clients[h == 14].mean() > 2 * clients[h == 3].mean()


# --- PostgreSQL -----------------------------------------------------------------------------

def test_connection_peaks_approach_but_never_exceed_usable(by_series):
    active = s(by_series, "pg_client_backends", state="active")
    idle = s(by_series, "pg_client_backends", state="idle")
    total = active + idle
    usable = s(by_series, "pg_usable_connections")
    assert (usable == demo.PG_USABLE_CONNECTIONS).all() and demo.PG_USABLE_CONNECTIONS == 97
    assert (s(by_series, "pg_max_connections") == 100).all()
    assert (s(by_series, "pg_superuser_reserved_connections") == 3).all()
    assert total.max() <= 97
    assert last_days(total, 14).max() >= 0.85 * 97
    assert first_days(total, 14).max() <= 75
    numbackends = s(by_series, "pg_numbackends", datname="app")
    assert (numbackends >= total).all() and (numbackends - total).max() <= 3
    assert numbackends.max() <= demo.PG_MAX_CONNECTIONS
    assert (active <= total).all()


def test_pg_buffer_hit_ratio_is_about_099(by_series):
    hit = step_rate(s(by_series, "pg_blks_hit_total", datname="app")).sum()
    read = step_rate(s(by_series, "pg_blks_read_total", datname="app")).sum()
    assert hit / (hit + read) == pytest.approx(0.99, abs=0.003)


def test_database_size_grows_with_one_purge_step(by_series):
    size = s(by_series, "pg_database_size_bytes", datname="app")
    gib = 2 ** 30
    assert size.iloc[0] == pytest.approx(40 * gib, rel=0.01)
    assert 50 * gib < size.iloc[-1] < 54 * gib
    drops = size.diff()[size.diff() < 0]
    assert len(drops) == 1
    assert drops.iloc[0] == pytest.approx(-1.5 * gib, rel=0.01)
    assert drops.index[0] == pd.Timestamp(demo.demo_events()["pg_purge"]["at"])
    assert (size % 8192 == 0).all()


def test_dead_tuples_are_a_sawtooth(by_series):
    dead = s(by_series, "pg_table_dead_tuples", datname="app", schema="public", table="orders")
    vacuums = (dead.diff() < 0).sum()
    assert 2 * 90 < vacuums < 30 * 90
    # autovacuum fires before the default threshold (50 + 0.2 * n_live_tup, n_live_tup < 3.1 M)
    assert dead.max() < 50 + 0.2 * 3.1e6


# --- the API --------------------------------------------------------------------------------

def test_request_rate_has_daily_weekly_seasonality_and_growth(by_series):
    rate = step_rate(s(by_series, "http_requests_total"))
    h, wd = rate.index.hour, rate.index.day_of_week
    weekday_peak = rate[(h == 14) & (wd < 5)].mean()
    assert weekday_peak / rate[(h == 3) & (wd < 5)].mean() > 3
    assert 0.5 < rate[(h == 14) & (wd >= 5)].mean() / weekday_peak < 0.7
    hourly = rate[wd < 5].groupby(h[wd < 5]).mean()
    assert hourly.idxmax() in (13, 14, 15)
    growth = last_days(rate, 28).mean() / first_days(rate, 28).mean()
    assert growth == pytest.approx(1.03 ** (62 / 7), rel=0.05)


def test_errors_are_rare_except_on_the_incident_day(by_series):
    req = s(by_series, "http_requests_total").diff().resample("1D").sum()
    err = s(by_series, "http_requests_failed_total").diff().resample("1D").sum()
    frac = err / req
    incident = pd.Timestamp(demo.demo_events()["api_incident"]["from"]).normalize()
    assert frac.idxmax() == incident
    assert frac.drop(incident).max() < 0.0015
    assert frac[incident] > 3 * frac.median()
    assert frac.median() == pytest.approx(0.001, rel=0.1)


def test_p95_latency_rises_with_load_toward_the_target(by_series):
    p95 = s(by_series, "http_request_duration_p95_seconds")
    assert 0.07 < p95[p95.index.hour == 3].median() < 0.10
    late = last_days(p95, 14).max()
    assert 0.8 * demo.LATENCY_TARGET_P95_SECONDS < late < demo.LATENCY_TARGET_P95_SECONDS
    assert first_days(p95, 14).max() < late - 0.04


# --- describe, docs, bad input --------------------------------------------------------------

def test_describe_demo_is_json_and_matches_the_frame(frame):
    info = demo.describe_demo()
    json.dumps(info, allow_nan=False)
    assert info["label"] == "SYNTHETIC DEMO DATA" and info["synthetic"] is True
    assert info["window"]["samples_per_series"] == SAMPLES
    assert len(info["series"]) == N_SERIES
    assert info["events"]["redis_restart"]["first_sample_after"] == demo.RESTART_AT.isoformat()
    assert info["limits"]["pg_usable_connections"] == 97
    assert demo.describe_demo(sources=["api"])["sources"] == ["api"]


def test_module_docstring_states_the_assumptions():
    doc = demo.__doc__
    for fact in ("SYNTHETIC DEMO DATA", "256 MiB", "3 %/week", "14:00 UTC", "day 61", "03:13:20",
                 "150 MiB", "215 MiB", "97", "40 GiB", "1.5 GiB", "0.001", "2.5 %", "250 ms"):
        assert fact in doc, fact


@pytest.mark.parametrize("kwargs, key", [
    ({"days": 0}, "days"),
    ({"days": 2.5}, "days"),
    ({"step": "7min"}, "step"),
    ({"step": "soon"}, "step"),
    ({"step": None}, "step"),
    ({"end": None}, "end"),
    ({"end": "2026-11-01T00:01:00Z"}, "end"),
    ({"end": "not a date"}, "end"),
    ({"sources": ["mysql"]}, "sources"),
    ({"seed": -1}, "seed"),
])
def test_unusable_arguments_raise_config_error_naming_the_key(kwargs, key):
    with pytest.raises(ConfigError) as err:
        demo.generate_demo(**kwargs)
    assert err.value.key == key


def test_other_windows_and_steps_work():
    f = demo.generate_demo(days=2, step="1h", end="2026-01-01")
    assert len(f) == N_SERIES * 48
    assert f["timestamp"].min() == pd.Timestamp("2025-12-30T00:00:00Z")


# --- CLI ------------------------------------------------------------------------------------

def test_cli_demo_writes_a_contract_csv(tmp_path, capsys):
    out = tmp_path / "demo.csv"
    assert main(["demo", "--days", "2", "--seed", "5", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rows"] == N_SERIES * 576 and summary["label"] == "SYNTHETIC DEMO DATA"
    back = make_frame(pd.read_csv(out, keep_default_na=False))
    pd.testing.assert_frame_equal(back, demo.generate_demo(days=2, seed=5))
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_demo_appends_to_a_store(tmp_path, capsys):
    from capplan.store import open_store

    target = tmp_path / "m.sqlite"
    assert main(["demo", "--days", "1", "--store", str(target)]) == 0
    with open_store(target) as store:
        got = store.query("redis_used_memory_bytes")
    assert len(got) == 288


def test_cli_demo_bad_input_exits_2(tmp_path, capsys):
    assert main(["demo", "--days", "0", "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "days" in err and not (tmp_path / "x.csv").exists()
