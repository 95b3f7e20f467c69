"""Evidence from the store: derived quantities, one instance among several, resets."""
import numpy as np
import pandas as pd
import pytest

from capplan.collect.demo import generate_demo
from capplan.errors import InsufficientData
from capplan.analysis.evidence import counter_increases, load_ratio, load_series
from capplan.store import open_store


@pytest.fixture(scope="module")
def two_redis_store(tmp_path_factory):
    """The demo's Redis twice: 'redis:cache' (restarts once) and 'redis:queue', which has the
    same traffic, twice the memory and NO restart (its counters climb on), so a sum of raw
    counters across instances would see a fake reset."""
    f = generate_demo(days=10, sources=["redis:cache"])
    g = f.copy()
    g["source"] = "redis:queue"
    mem = g["metric"] == "redis_used_memory_bytes"
    g.loc[mem, "value"] *= 2
    for metric in ("redis_keyspace_hits_total", "redis_keyspace_misses_total",
                   "redis_commands_processed_total"):
        m = g["metric"] == metric
        v = g.loc[m, "value"].to_numpy()
        inc = np.where(np.diff(v) < 0, v[1:], np.diff(v))
        g.loc[m, "value"] = v[0] + np.concatenate([[0.0], np.cumsum(inc)])
    g.loc[g["metric"] == "redis_counter_reset", "value"] = 0.0
    st = g["metric"] == "redis_start_time_seconds"
    g.loc[st, "value"] = g.loc[st, "value"].iloc[0]
    store = open_store(tmp_path_factory.mktemp("ev") / "m.sqlite")
    store.append(pd.concat([f, g], ignore_index=True))
    yield store
    store.close()


def test_source_keeps_one_instance_and_none_sums_them(two_redis_store):
    cache = load_series(two_redis_store, "redis_used_memory_bytes", source="redis:cache")
    queue = load_series(two_redis_store, "redis_used_memory_bytes", source="redis:queue")
    both = load_series(two_redis_store, "redis_used_memory_bytes")
    assert cache.source == "redis:cache" and queue.source == "redis:queue"
    assert queue.series.mean() == pytest.approx(2 * cache.series.mean(), rel=1e-9)
    assert both.series.mean() == pytest.approx(3 * cache.series.mean(), rel=1e-9)
    assert "summed over 2 series" in both.how


def test_hit_ratio_sums_deltas_and_survives_the_restart(two_redis_store):
    one = load_ratio(two_redis_store, "redis_keyspace_hit_ratio", source="redis:cache")
    queue = load_ratio(two_redis_store, "redis_keyspace_hit_ratio", source="redis:queue")
    both = load_ratio(two_redis_store, "redis_keyspace_hit_ratio")
    assert 0.9 < one.value < 0.96 and one.lo95 < one.value < one.hi95
    assert one.resets == 1 and queue.resets == 0 and queue.n == pytest.approx(one.n)
    # increases are derived per instance, then summed: the cache's restart is no fleet reset
    assert both.n == pytest.approx(2 * one.n) and both.value == pytest.approx(one.value)
    hourly = load_series(two_redis_store, "redis_commands_processed_per_second", grain="1h")
    single = load_series(two_redis_store, "redis_commands_processed_per_second",
                         source="redis:cache", grain="1h")
    assert np.allclose(hourly.series.to_numpy(), 2 * single.series.to_numpy())


def test_rates_from_counters_are_never_negative(two_redis_store):
    r = load_series(two_redis_store, "redis_commands_processed_per_second", source="redis:cache",
                    grain="5min")
    assert (r.series >= 0).all() and r.unit == "per_second"
    inc = counter_increases(two_redis_store, "redis_commands_processed_total", source="redis:cache")
    assert inc.total > 0 and inc.n_samples == 10 * 288 and inc.resets == 1
    assert (inc.values >= 0).all() and inc.cumulative().is_monotonic_increasing


def test_unknown_metric_or_source_is_insufficient_data(two_redis_store):
    with pytest.raises(InsufficientData, match="redis:nope"):
        load_series(two_redis_store, "redis_used_memory_bytes", source="redis:nope")
