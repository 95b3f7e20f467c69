"""Evidence from the store: derived quantities, one instance among several, resets."""
import pandas as pd
import pytest

from capplan.demo import generate_demo
from capplan.errors import InsufficientData
from capplan.evidence import counter_total, load_ratio, load_series
from capplan.store import open_store


@pytest.fixture(scope="module")
def two_redis_store(tmp_path_factory):
    """The demo's Redis twice: as 'redis:cache' and, with memory doubled, as 'redis:queue'."""
    f = generate_demo(days=10, sources=["redis:cache"])
    g = f.copy()
    g["source"] = "redis:queue"
    mem = g["metric"] == "redis_used_memory_bytes"
    g.loc[mem, "value"] *= 2
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
    both = load_ratio(two_redis_store, "redis_keyspace_hit_ratio")
    assert 0.9 < one.value < 0.96 and one.lo95 < one.value < one.hi95
    assert both.n == pytest.approx(2 * one.n) and both.value == pytest.approx(one.value)


def test_rates_from_counters_are_never_negative(two_redis_store):
    r = load_series(two_redis_store, "redis_commands_processed_per_second", source="redis:cache",
                    grain="5min")
    assert (r.series >= 0).all() and r.unit == "per_second"
    total, n = counter_total(two_redis_store, "redis_commands_processed_total", source="redis:cache")
    assert total > 0 and n == 10 * 288


def test_unknown_metric_or_source_is_insufficient_data(two_redis_store):
    with pytest.raises(InsufficientData, match="redis:nope"):
        load_series(two_redis_store, "redis_used_memory_bytes", source="redis:nope")
