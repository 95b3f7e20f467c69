import pandas as pd
import pytest

from capplan.errors import DataContractError
from capplan.core.frame import COLUMNS, labels_key, make_frame, parse_labels, select, series, validate_frame


def _rec(**kw):
    base = {"timestamp": "2026-01-01T00:00:00Z", "source": "redis:cache",
            "metric": "redis_used_memory_bytes", "labels": {}, "value": 1.0,
            "kind": "gauge", "unit": "bytes"}
    base.update(kw)
    return base


def test_make_frame_gives_contract_columns_and_dtypes():
    df = make_frame([_rec(), _rec(timestamp="2026-01-01T00:05:00+01:00", labels={"db": 0})])
    assert tuple(df.columns) == COLUMNS
    assert str(df["timestamp"].dt.tz) == "UTC"
    assert df["timestamp"].iloc[1] == pd.Timestamp("2025-12-31T23:05:00Z")
    assert df["labels"].tolist() == ["{}", '{"db":"0"}']
    assert df["value"].dtype == "float64"


def test_labels_key_is_canonical_and_round_trips():
    key = labels_key({"b": 2, "a": "x"})
    assert key == '{"a":"x","b":"2"}'
    assert parse_labels(key) == {"a": "x", "b": "2"}
    assert labels_key(None) == "{}"


def test_validate_frame_reports_every_violation_at_once():
    df = make_frame([_rec()])
    df.loc[0, "kind"] = "histogram"
    df.loc[0, "unit"] = "parsecs"
    df.loc[0, "metric"] = "Bad-Name"
    with pytest.raises(DataContractError) as exc:
        validate_frame(df)
    cols = {v["column"] for v in exc.value.violations}
    assert {"kind", "unit", "metric"} <= cols
    assert "how to fix" in str(exc.value)


def test_naive_timestamps_and_negative_counters_are_violations():
    df = make_frame([_rec(kind="counter", unit="count", metric="x_total", value=-1.0)], validate=False)
    with pytest.raises(DataContractError) as exc:
        validate_frame(df)
    assert any("counter" in v["reason"] for v in exc.value.violations)
    naive = df.assign(timestamp=df["timestamp"].dt.tz_localize(None), value=1.0)
    with pytest.raises(DataContractError) as exc:
        validate_frame(naive)
    assert exc.value.violations[0]["column"] == "timestamp"


def test_missing_column_is_reported():
    with pytest.raises(DataContractError):
        make_frame(pd.DataFrame({"timestamp": [], "value": []}))


def test_select_and_series_pick_one_series():
    df = make_frame([_rec(labels={"db": 0}, value=1), _rec(labels={"db": 1}, value=2),
                     _rec(labels={"db": 1}, value=3, timestamp="2026-01-01T00:05:00Z")])
    assert len(select(df, "redis_used_memory_bytes", labels={"db": 1})) == 2
    with pytest.raises(ValueError, match="matches 2 series"):
        series(df, "redis_used_memory_bytes")
    s = series(df, "redis_used_memory_bytes", labels={"db": 1})
    assert s.tolist() == [2.0, 3.0]
    with pytest.raises(KeyError, match="nope"):
        series(df, "nope")
