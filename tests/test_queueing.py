"""Queueing models against ../shared/reference/queueing/ (M/M/c table and worked examples)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from capplan.errors import ConfigError
from capplan.models import queueing as qm
from capplan.models.usl import fit_usl


@pytest.fixture(scope="module")
def qref(shared_dir):
    base = shared_dir / "reference" / "queueing"
    table = pd.read_csv(base / "mmc_lq_table.csv")
    examples = {e["id"]: e for e in json.loads((base / "worked_examples.json").read_text())["examples"]}
    return table, examples


def test_mmc_lq_table_all_three_columns(qref):
    table, _ = qref
    for row in table.itertuples():
        m, rho = int(row.servers), float(row.util)
        lq = qm.mmc(rho * m, 1.0, m).queue_mean  # S = 1 s, arrival rate = rho m
        assert abs(lq - row.Lq_erlang_c) <= 1e-6 * max(1.0, row.Lq_erlang_c), (m, rho)
        assert abs(qm.lq_gunther(m, rho) - row.Lq_gunther_approx) <= 1e-6 * max(1.0, row.Lq_gunther_approx)
        assert abs(qm.lq_sakasegawa(m, rho) - row.Lq_sakasegawa_approx) <= 1e-6 * max(1.0, row.Lq_sakasegawa_approx)
        if rho > 0:  # the birth-death solution agrees with the Erlang C recursion
            assert qm.mmc(rho * m, 1.0, m).p_wait == pytest.approx(qm.erlang_c(m, rho * m), rel=1e-9)


def test_mm1_stretch_factor_and_quantiles(qref):
    _, ex = qref
    s = ex["mm1-stretch-factor"]["inputs"]["S"]
    for rho, r in ex["mm1-stretch-factor"]["published"]["R_at_rho"].items():
        assert qm.mm1(float(rho) / s, s).response_mean_s == pytest.approx(r)
    q = qm.mm1(3.0, 0.25)
    for key, mult in ex["mm1-quantile-heuristics"]["exact"].items():
        if key.startswith("R"):
            p = int(key[1:]) / 100
            assert q.response_quantile(p) / q.response_mean_s == pytest.approx(mult, abs=5e-5)


def test_airport_one_queue_vs_many(qref):
    _, ex = qref
    e = ex["airport-combined-vs-separate"]
    s = e["inputs"]["S_s"]
    comb = qm.mmc(240 / 3600, s, 2)
    sep = qm.mm1(120 / 3600, s)
    comb4 = qm.mmc(960 / 3600, s, 8)
    exact = e["our_exact"]
    assert comb.p_wait == pytest.approx(exact["combined"]["C"], rel=1e-12)
    assert comb.queue_mean == pytest.approx(exact["combined"]["Lq"], rel=1e-12)
    assert comb.response_mean_s == pytest.approx(exact["combined"]["R_s"], rel=1e-12)
    assert sep.queue_mean == pytest.approx(0.5) and sep.response_mean_s == pytest.approx(30.0)
    assert comb4.queue_mean == pytest.approx(exact["combined_4x"]["Lq"], rel=1e-12)
    assert comb4.wait_mean_s == pytest.approx(exact["combined_4x"]["Wq_s"], rel=1e-12)
    assert comb4.response_mean_s == pytest.approx(exact["combined_4x"]["R_s"], rel=1e-12)
    assert round(comb4.queue_mean, 2) == e["published"]["combined_4x"]["Lq"]  # book: 0.06


def test_square_root_staffing(qref):
    _, ex = qref
    e = ex["square-root-staffing"]
    busy = e["inputs"]["servers"] * e["inputs"]["utilization"]
    beta = (e["inputs"]["servers"] - busy) / math.sqrt(busy)
    c = qm.square_root_staffing(busy * e["inputs"]["traffic_growth"], beta)
    assert round(c, 2) == e["published"]["servers_needed"] and math.ceil(c) == e["published"]["rounded"]


def test_erlang_c_call_centre_and_workers_needed(qref):
    _, ex = qref
    e = ex["erlang-c-call-centre-48E-55"]
    inp, exact = e["inputs"], e["our_exact"]
    jobs_per_min = inp["calls_per_half_hour"] / 30
    pool = qm.worker_pool(jobs_per_min, inp["AHT_s"], inp["agents"])
    assert pool.utilization == pytest.approx(exact["occupancy"])
    assert round(pool.p_wait, 6) == exact["P_wait"]
    assert round(pool.wait_mean_s, 3) == exact["ASA_s"]
    assert round(pool.service_level(15), 4) == exact["SL_15s"]
    assert round(pool.service_level(20), 4) == exact["SL_20s"]
    # "80 % answered within 20 s": the 80th percentile of the queue wait <= 20 s
    need = qm.workers_needed(jobs_per_min, inp["AHT_s"], 20, percentile=0.8)
    assert need == exact["min_agents_80_20"]
    assert round(qm.worker_pool(jobs_per_min, inp["AHT_s"], need).service_level(20), 4) == exact["SL_20s_at_54"]
    assert qm.worker_pool(jobs_per_min, inp["AHT_s"], need - 1).service_level(20) < 0.8
    assert qm.erlang_c(inp["agents"], exact["A_erlangs"]) == pytest.approx(exact["P_wait"], abs=5e-7)


def test_pdq_open_models(qref):
    _, ex = qref
    g = ex["pdq-mm1-grocery"]
    q = qm.mm1(g["inputs"]["arrival_rate_per_min"], g["inputs"]["S_min"])  # minutes throughout
    for key, attr in (("rho", "utilization"), ("R_min", "response_mean_s"), ("Wq_min", "wait_mean_s"),
                      ("L", "in_system_mean"), ("Lq", "queue_mean")):
        assert getattr(q, attr) == pytest.approx(g["our_exact"][key], rel=1e-12), key
    m = ex["pdq-mmm"]
    q = qm.mmc(m["inputs"]["arrival_rate"], m["inputs"]["S"], m["inputs"]["servers"])
    for key, attr in (("rho", "utilization"), ("P_wait", "p_wait"), ("Wq", "wait_mean_s"),
                      ("R", "response_mean_s"), ("Lq", "queue_mean"), ("L", "in_system_mean")):
        assert getattr(q, attr) == pytest.approx(m["our_exact"][key], rel=1e-12), key


def test_pdq_closed_models_through_littles_law_and_mva(qref):
    _, ex = qref
    t = ex["pdq-aws-tomcat-closed"]["published"]
    x = 300 / 0.444  # saturated: every thread busy
    assert x == pytest.approx(t["X"], abs=5e-5)
    assert qm.littles_law(concurrency=400, throughput=x) == pytest.approx(t["R_s"], abs=5e-4)
    assert qm.littles_law(throughput=x, response_time_s=t["R_s"]) == pytest.approx(400, rel=1e-3)
    e = ex["pdq-closed-mm1n"]["inputs"]
    s, z = e["S_s"], e["Z_s"]
    rows = qm.mva_closed(1000, s, z)
    for row in rows:
        assert row["x"] <= min(row["n"] / (s + z), 1 / s) + 1e-12
        assert row["n"] == pytest.approx(row["x"] * (row["r"] + z), rel=1e-12)  # Little
    assert rows[0]["r"] == pytest.approx(s)
    assert rows[99]["x"] < 100 / (s + z) and rows[99]["x"] > 0.99 * 100 / (s + z)
    assert rows[-1]["x"] == pytest.approx(1 / s, rel=1e-3)  # far beyond N* = (S+Z)/S = 477


def test_littles_law_and_utilization():
    assert qm.littles_law(throughput=50.0, response_time_s=0.2) == pytest.approx(10.0)
    assert qm.littles_law(concurrency=10.0, response_time_s=0.2) == pytest.approx(50.0)
    assert qm.littles_law(concurrency=10.0, throughput=50.0, think_time_s=0.1) == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="exactly two"):
        qm.littles_law(throughput=1.0)
    assert qm.utilization(2.0, 1.0, 3) == pytest.approx(2 / 3)
    assert qm.erlang_b(2, 1.0) == pytest.approx(0.2)
    with pytest.raises(ConfigError, match="service_time_s"):
        qm.mm1(1.0, -1.0)


def test_unstable_queue_is_flagged():
    q = qm.mmc(4.0, 1.0, 3)
    assert not q.stable and q.utilization > 1 and math.isinf(q.wait_mean_s)
    assert q.to_dict()["wait_mean_s"] is None and q.response_quantile(0.95) == math.inf


def test_response_quantile_against_simulation():
    """FCFS M/M/3 at rho = 0.8 simulated (Kiefer-Wolfowitz recursion), p95 within 3 %."""
    rng = np.random.default_rng(7)
    lam, s, c, n = 2.4, 1.0, 3, 200_000
    arrivals = np.cumsum(rng.exponential(1 / lam, n))
    services = rng.exponential(s, n)
    free_at = np.zeros(c)
    resp = np.empty(n)
    for i in range(n):
        j = int(np.argmin(free_at))
        start = max(arrivals[i], free_at[j])
        free_at[j] = start + services[i]
        resp[i] = free_at[j] - arrivals[i]
    q = qm.mmc(lam, s, c)
    sim = resp[n // 10:]
    assert q.response_quantile(0.95) == pytest.approx(np.quantile(sim, 0.95), rel=0.03)
    assert q.response_mean_s == pytest.approx(sim.mean(), rel=0.03)


def test_response_survival_integrates_to_the_mean():
    q = qm.mmc(7.0, 1.0, 9)
    ts = np.linspace(0, 60, 200_001)
    surv = np.array([q.response_survival(t) for t in ts[::100]])
    assert np.trapezoid(surv, ts[::100]) == pytest.approx(q.response_mean_s, rel=1e-3)


def test_headroom():
    h = qm.headroom(2.0, 1.0, 3)
    assert h["utilization"] == pytest.approx(2 / 3) and h["growth"] == pytest.approx(0.5, rel=1e-9)
    h = qm.headroom(2.0, 1.0, 3, wait_target_s=0.2)
    assert h["growth"] < 0 and qm.mmc(h["max_arrival_rate"], 1.0, 3).wait_mean_s == pytest.approx(0.2)
    h = qm.headroom(1.0, 1.0, 3, max_utilization=0.7)
    assert h["max_arrival_rate"] == pytest.approx(2.1)


def test_workers_needed_for_mean_wait():
    c = qm.workers_needed(jobs_per_min=120, mean_job_s=3.0, wait_target_s=0.5)
    assert qm.worker_pool(120, 3.0, c).wait_mean_s <= 0.5 < qm.worker_pool(120, 3.0, c - 1).wait_mean_s
    assert qm.workers_needed(120, 3.0, 0.5, max_utilization=0.5) >= 12


def test_instances_needed_with_a_capacity():
    plan = qm.instances_needed(1000.0, 0.05, 100.0, service_time_s=0.01)  # M/M/1 per instance
    assert plan.concurrency_per_instance == 1 and plan.response_target_quantile_s <= 0.05
    worse = qm.mm1(1000.0 / (plan.instances - 1), 0.01)
    assert not worse.stable or worse.response_quantile(0.95) > 0.05
    big = qm.instances_needed(1000.0, 0.05, 400.0, servers_per_instance=4)
    assert big.instances < plan.instances and "M/M/4" in big.method
    with pytest.raises(ConfigError, match="lone request"):
        qm.instances_needed(1000.0, 0.02, 100.0)  # p95 of one request alone is 3 x 10 ms


def test_instances_needed_with_a_usl(shared_dir):
    d = pd.read_csv(shared_dir / "reference" / "usl" / "cisco.csv")
    fit = fit_usl(d.N, d.X)  # queries/s per instance
    plan = qm.instances_needed(100_000.0, 0.005, fit)
    assert plan.response_target_quantile_s <= 0.005
    assert plan.instances * fit.x_peak >= 100_000
    assert 1 <= plan.concurrency_per_instance <= math.floor(fit.n_peak)
    # one instance fewer fails for every pool size
    a = 100_000.0 / (plan.instances - 1)
    for c in range(1, math.floor(fit.n_peak) + 1):
        rates = fit.throughput_at(np.arange(1, c + 1, dtype=float))
        q = qm.load_dependent(a, rates)
        assert not q.stable or q.response_quantile(0.95) > 0.005
    tenfold = qm.instances_needed(1_000_000.0, 0.005, fit)
    assert tenfold.instances > 9 * plan.instances
    fixed = qm.instances_needed(100_000.0, 0.005, fit, concurrency=8)
    assert fixed.concurrency_per_instance == 8 and fixed.instances >= plan.instances
    # a linear USL (sigma = kappa = 0 at c slots) is M/M/c
    rates = np.arange(1, 5) * 50.0
    assert qm.load_dependent(150.0, rates).p_wait == pytest.approx(qm.erlang_c(4, 3.0), rel=1e-12)


def test_usl_load_dependent_queue_against_simulation(shared_dir):
    """A USL server (SPEC SDM91 fit, 40 slots, 80 % busy) simulated as a birth-death process with
    processor sharing among the jobs in service and a FCFS queue: mean and p95 within 3 %."""
    from collections import deque

    d = pd.read_csv(shared_dir / "reference" / "usl" / "specsdm91.csv")
    fit = fit_usl(d.N, d.X)
    rates = fit.throughput_at(np.arange(1, 41, dtype=float))
    a = 0.8 * rates[-1]
    q = qm.load_dependent(a, rates)
    rng = np.random.default_rng(3)
    t, busy, waiting, resp = 0.0, [], deque(), []
    while len(resp) < 60_000:
        k = len(busy)
        total = a + (rates[k - 1] if k else 0.0)
        t += rng.exponential(1 / total)
        if rng.random() < a / total:
            (busy if k < 40 else waiting).append(t)
        else:
            resp.append(t - busy.pop(int(rng.integers(k))))
            if waiting:
                busy.append(waiting.popleft())
    sim = np.array(resp[5000:])
    assert q.response_mean_s == pytest.approx(sim.mean(), rel=0.03)
    assert q.response_quantile(0.95) == pytest.approx(np.quantile(sim, 0.95), rel=0.03)
