"""Runway findings for a reader (issue 13): the "Model" column in words (internals kept for the
appendix), and a size-type resource's "current" is its latest reading, not a day's mean."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from capplan.analysis.runway import analyse_capacity, describe_model, parse_capacity
from capplan.collect._common import labels_key
from capplan.report.document import build_document
from capplan.store import open_store

ENSEMBLE = ("mean of [log level=ewm(a=0.05) trend=linear season=week + level=ewm(a=0.15) "
            "trend=damped season=week + level=median(1 block) trend=damped season=week]")


def _frame(ts, metric, values, unit, labels=None, source="postgres:main"):
    return pd.DataFrame({"timestamp": pd.DatetimeIndex(ts).astype("datetime64[ns, UTC]"),
                         "source": source, "metric": metric, "labels": labels_key(labels or {}),
                         "value": np.asarray(values, float), "kind": "gauge", "unit": unit})


def test_ensemble_is_described_in_words():
    words = describe_model(ENSEMBLE, "1h", n_history=2000)
    assert words == ("daily and weekly cycle, linear or damped trend, level smoothed over about "
                     "the last 7 to 20 hours or median of the last day, growth in proportion "
                     "(log scale) in 1 of 3; average of 3 models")
    one = describe_model("level=ewm(a=0.05) trend=none season=none", "5min")
    assert one == "no daily or weekly cycle, no trend, level smoothed over about the last 2 hours; one model"
    assert describe_model("something new=1") == "see the appendix"


def _filling_disk(tmp_path):
    """21 days of 5-minute readings of a database that grows 1 GiB a day, two series (tables)."""
    ts = pd.date_range("2026-11-10", "2026-12-01", freq="5min", tz="UTC")
    days = (ts - ts[0]) / pd.Timedelta(days=1)
    gib = 2 ** 30
    st = open_store(tmp_path / "disk.sqlite")
    st.append(pd.concat([
        _frame(ts, "pg_database_size_bytes", 50 * gib + gib * days, "bytes", {"datname": "a"}),
        _frame(ts, "pg_database_size_bytes", 10 * gib + 0.5 * gib * days, "bytes",
               {"datname": "b"})], ignore_index=True))
    return st, ts, gib


def test_size_current_is_the_latest_reading_and_model_is_words(tmp_path):
    st, ts, gib = _filling_disk(tmp_path)
    spec = parse_capacity([{"name": "Database size", "metric": "pg_database_size_bytes",
                            "limit": 200 * gib}])[0]
    out = analyse_capacity(st, spec, end=ts[-1], horizon_days=30)
    f = out.finding
    days = (ts[-1] - ts[0]) / pd.Timedelta(days=1)
    latest = 60 * gib + 1.5 * gib * days
    assert f.value == latest                                   # not the 24 h mean (~0.75 GiB lower)
    assert f.extra["current_definition"].startswith("latest reading (2026-12-01")
    assert f.extra["how"].endswith("; current: " + f.extra["current_definition"])
    assert f.extra["utilisation"] == latest / (200 * gib)
    model = f.extra["display"]["model"]
    assert "ewm(" not in model and "season=" not in model
    assert re.search(r"(one model|average of \d models)$", model)
    assert f.extra["model"].startswith(("mean of [", "level=", "log ", "logit "))
    # the report's runway table shows the words; the appendix keeps the internals
    summary = {"sections": {"runway": [f.to_dict()]}, "notes": {}, "statements": [],
               "recommendations": [], "next_phase_targets": [], "windows": {}}
    text = str(build_document(summary))
    assert model in text and f.extra["model"] in text


def test_a_level_type_resource_keeps_its_daily_mean(tmp_path):
    ts = pd.date_range("2026-11-20", "2026-12-01", freq="5min", tz="UTC")
    st = open_store(tmp_path / "conn.sqlite")
    st.append(_frame(ts, "pg_client_backends", 10 + np.arange(len(ts)) % 12, "count"))
    spec = parse_capacity([{"name": "Connections", "metric": "pg_client_backends",
                            "limit": 100}])[0]
    f = analyse_capacity(st, spec, end=ts[-1], horizon_days=7).finding
    assert f.extra["current_definition"] == "mean of the last 24 h"
    assert f.value != 10 + (len(ts) - 1) % 12
