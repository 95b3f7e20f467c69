"""Intervals from between-block variation (capplan.models.blocks)."""
import numpy as np
import pytest

from capplan.models.blocks import MIN_BLOCKS, block_mean, block_quantile, block_ratio, blocks_text


def test_too_few_blocks_say_how_many_are_needed():
    r = block_ratio([90, 95, 80], [100, 100, 100])
    assert not r.sufficient and r.lo is None and r.n_blocks == 3
    assert r.reason == f"3 hourly blocks; at least {MIN_BLOCKS} are needed"
    assert r.estimate == pytest.approx(265 / 300) and r.lowest == 0.8
    assert blocks_text(1, "day") == "1 daily block"


def test_ratio_interval_reflects_swings_not_event_counts():
    # 24 hourly blocks of ~416,667 lookups alternating 85 % / 95 %
    t = np.full(24, 1e7 / 24)
    s = t * np.where(np.arange(24) % 2 == 0, 0.85, 0.95)
    r = block_ratio(s, t)
    assert r.estimate == pytest.approx(0.90)
    assert r.hi - r.lo > 0.03                      # Wilson on 10M events would be ±0.0002
    assert r.count_good(0.9, "min") == 12
    # steady blocks give a tight interval around the same value
    steady = block_ratio(t * 0.9, t)
    assert steady.hi - steady.lo < 1e-9


def test_ratio_interval_covers_the_truth_on_unseen_autocorrelated_data():
    """Coverage check: hourly ratios follow an AR(1) around 0.9; the 95 % interval of a
    24-block window should cover the long-run mean about 95 % of the time (>= 85 % here)."""
    rng = np.random.default_rng(3)
    hits = 0
    trials = 300
    for _ in range(trials):
        e = np.empty(24)
        e[0] = rng.normal(0, 0.02)
        for i in range(1, 24):
            e[i] = 0.3 * e[i - 1] + rng.normal(0, 0.02)
        t = rng.uniform(5e4, 1.5e5, 24)
        r = block_ratio(t * (0.9 + e), t)
        hits += r.lo <= 0.9 <= r.hi
    assert hits / trials >= 0.88


def test_mean_and_quantile_by_blocks():
    rng = np.random.default_rng(0)
    blocks = np.repeat(np.arange(10), 12)
    level = np.repeat(rng.normal(0.2, 0.05, 10), 12)        # each hour its own level
    x = level + rng.normal(0, 0.005, blocks.size)
    m = block_mean(x, blocks)
    naive_half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert m.sufficient and (m.hi - m.lo) / 2 > 2 * naive_half
    q = block_quantile(x, blocks, 0.95)
    assert q.sufficient and q.lo <= q.estimate <= q.hi and q.n_blocks == 10
    assert block_quantile(x, blocks, 0.95).to_dict() == q.to_dict()     # fixed seed


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError):
        block_ratio([1, 2], [3])
    with pytest.raises(ValueError):
        block_mean([1.0], [0], conf=1.5)
    with pytest.raises(ValueError):
        block_quantile([1.0], [0], 1.5)
    assert block_ratio([], []).reason == "no events in the window"
