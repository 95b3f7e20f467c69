"""histogram_quantile semantics, SLO fractions and windows from bucket counters.

Reference values: prometheus ``promql/promqltest/testdata/histograms.test`` (the
``testhistogram_bucket`` series at 50m: positive buckets 0.1/0.2/1/+Inf = 50/70/110/120,
negative buckets -0.2/-0.1/0.3/+Inf = 10/20/20/30).  The real-stack test
(tests/test_prometheus_stack.py) also checks equality with a running Prometheus.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from capplan.errors import ConfigError, InsufficientData
from capplan.models import histogram as h

POS = (["0.1", ".2", "1e0", "+Inf"], [50, 70, 110, 120])
NEG = (["-.2", "-0.1", "0.3", "+Inf"], [10, 20, 20, 30])


@pytest.mark.parametrize("q, pos, neg", [
    (-0.1, -math.inf, -math.inf),
    (0, 0.0, -0.2),
    (0.2, 0.048, -0.2),
    (0.5, 0.15, -0.15),
    (0.8, 0.72, 0.3),
    (1, 1.0, 0.3),
    (1.2, math.inf, math.inf),
])
def test_matches_prometheus_reference(q, pos, neg):
    assert h.histogram_quantile(q, *POS) == pytest.approx(pos, abs=1e-12)
    assert h.histogram_quantile(q, *NEG) == pytest.approx(neg, abs=1e-12)


def test_nan_cases():
    assert math.isnan(h.histogram_quantile(0.5, ["0.1", "1"], [1, 2]))        # no +Inf bucket
    assert math.isnan(h.histogram_quantile(0.5, ["+Inf"], [5]))              # one bucket only
    assert math.isnan(h.histogram_quantile(0.5, ["0.1", "+Inf"], [0, 0]))    # no observations
    assert math.isnan(h.histogram_quantile(float("nan"), *POS))


def test_unsorted_duplicates_and_monotonicity_fix():
    b = h.buckets(["+Inf", "0.2", "0.1", "0.1"], [120, 70, 30, 20])
    assert b.upper == (0.1, 0.2, math.inf) and b.counts == (50, 70, 120)
    m = h.buckets(["0.1", "0.2", "+Inf"], [50, 45, 100])     # 0.2 scraped lower than 0.1
    assert m.forced_monotonic and m.counts == (50, 50, 100)
    assert h.quantile(0.5, m).value == pytest.approx(0.1)


def test_precision_is_the_bucket():
    r = h.quantile(0.9, h.buckets(*POS))
    assert (r.lower, r.upper) == (0.2, 1.0) and r.width == pytest.approx(0.8)
    assert "(0.2, 1]" in r.precision_note()
    top = h.quantile(0.95, h.buckets(*POS))
    assert top.open_ended and top.value == 1.0 and "lower limit" in top.precision_note()


def test_slo_fraction_exact_on_a_bound_and_said_otherwise():
    b = h.buckets(*POS)
    ex = h.fraction_below(0.2, b)
    assert ex.exact and ex.value == pytest.approx(70 / 120) and ex.good == 70
    approx = h.fraction_below(0.6, b)
    assert not approx.exact and approx.bounds == (0.2, 1.0)
    assert approx.lower == pytest.approx(70 / 120) and approx.upper == pytest.approx(110 / 120)
    assert approx.value == pytest.approx((70 + 40 * 0.5) / 120)
    assert "not a bucket bound" in approx.note
    above = h.fraction_below(5, b)
    assert not above.exact and above.upper == 1.0 and "highest finite bound" in above.note
    with pytest.raises(InsufficientData):
        h.fraction_below(0.2, h.buckets(["0.1", "+Inf"], [0, 0]))


def test_window_counts_handle_resets_per_bucket():
    le = ["0.1", "+Inf"]
    reads = [[10, 20], [15, 30], [2, 4], [5, 10]]   # restart between read 2 and 3
    b = h.window_counts(le, reads)
    assert b.counts == (5 + 2 + 3, 10 + 4 + 6)
    with pytest.raises(InsufficientData):
        h.window_counts(le, reads[:1])
    with pytest.raises(ConfigError):
        h.parse_le("abc")


def test_histograms_from_frame_groups_and_sums():
    from capplan.core.frame import make_frame

    t0 = pd.Timestamp("2026-01-01T00:00:00Z")
    rows = []
    for inst, scale in (("a", 1), ("b", 3)):
        for i, (le, base) in enumerate((("0.1", 5), ("0.5", 8), ("+Inf", 10))):
            for k in range(3):
                rows.append({"timestamp": t0 + pd.Timedelta(seconds=15 * k), "source": "prometheus",
                             "metric": "lat_seconds_bucket", "labels": {"le": le, "instance": inst},
                             "value": float(base * scale * k), "kind": "counter", "unit": "count"})
    fr = make_frame(rows)
    per = h.histograms_from_frame(fr, "lat_seconds_bucket", by=["instance"])
    assert per[("a",)].counts == (10, 16, 20) and per[("b",)].counts == (30, 48, 60)
    total = h.histograms_from_frame(fr, "lat_seconds_bucket")[()]
    assert total.counts == (40, 64, 80)
    assert h.quantile(0.5, total).value == pytest.approx(0.1)
