"""Worker pools in the executive summary and the recommendations (issue 14 item 5): a pool that
misses its wait target, or whose arrival rate crosses / is at risk of crossing what its workers
serve, is named there with its finding ids; a pool with headroom is not."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from capplan.analysis.summary import _recommendations, build_summary, statements
from capplan.analysis.workers import analyse_worker_pool, parse_worker_pools
from capplan.collect.demo import DEMO_WORKER_POOL, generate_demo_jobs
from capplan.store import open_store

from test_provenance import _numbers


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("summary_workers") / "m.sqlite"
    st = open_store(str(path))
    st.append(generate_demo_jobs(days=21))
    yield st
    st.close()


def _pool(st, **changes):
    spec = parse_worker_pools([{**DEMO_WORKER_POOL, **changes}])[0]
    end = pd.Timestamp(st.series()["last"].max())
    return [f.to_dict() for f in analyse_worker_pool(st, spec, end=end, horizon_days=30,
                                                     lookback_days=21)]


def _quoted_numbers_come_from_refs(items, sections):
    by_id = {f["id"]: f for fs in sections.values() for f in fs}
    for it in items:
        allowed = set().union(*(_numbers(json.dumps(by_id[r], ensure_ascii=False))
                                for r in it["refs"]))
        missing = [n for n in _numbers(it["text"]) if n not in allowed and n not in ("95", "80")]
        assert not missing, (it["text"], missing)


def test_a_pool_that_misses_its_wait_target_is_in_the_summary(store):
    fs = _pool(store, name="Tight pool", wait_target_s=0.5, workers=2)
    sections = {"workers": fs}
    miss_ids = {f["id"] for f in fs if f["status"] == "misses"}
    assert "workers.tight_pool.wait" in miss_ids
    stm = statements(sections, horizon_days=30, from_phase="alpha")
    named = {r for s in stm for r in s["refs"]}
    assert miss_ids <= named
    assert all(s["severity"] == "misses" for s in stm if set(s["refs"]) & miss_ids)
    rec = _recommendations(sections)
    wait_rec = [r for r in rec if "workers.tight_pool.wait" in r["refs"]]
    assert wait_rec and "workers.tight_pool.workers_needed_peak" in wait_rec[0]["refs"]
    need = next(f for f in fs if f["id"].endswith(".workers_needed_peak"))
    assert f"at least {need['display']['value']} workers" in wait_rec[0]["text"]
    _quoted_numbers_come_from_refs(stm + rec, sections)


def test_a_pool_with_headroom_stays_out(store):
    fs = _pool(store, name="Roomy pool", workers=40, wait_target_s=600.0)
    assert not [f for f in fs if f["status"] in ("misses", "crosses", "at risk")]
    sections = {"workers": fs}
    assert not statements(sections, horizon_days=30, from_phase="alpha")
    assert not _recommendations(sections)


def test_a_pool_runway_at_risk_uses_the_one_status_word(store):
    fs = _pool(store, name="Roomy pool", workers=40, wait_target_s=600.0)
    rw = next(f for f in fs if f["id"].endswith(".runway"))
    rw.update(status="not within horizon")
    rw["extra"]["p_cross_within_horizon"] = 0.5
    rw["display"]["p_cross"] = "50%"
    out = build_summary(store, {"05-workers": {"findings": fs}}, run_id="t")
    got = next(f for f in out["sections"]["workers"] if f["id"] == rw["id"])
    assert got["status"] == "at risk"
    (stm,) = [s for s in out["statements"] if rw["id"] in s["refs"]]
    assert stm["severity"] == "at risk"
    assert rw["extra"]["model"] not in stm["text"] and "forecast crossing" in stm["text"]
    assert any(rw["id"] in r["refs"] for r in out["recommendations"])
