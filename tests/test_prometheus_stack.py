"""Bring-your-own-metrics against the real thing.

A prometheus_client service on loopback (tests/apiservice.py: request counter, latency histogram
with 25 ms buckets) runs under a bounded closed-loop load whose delays are known (uniform 5-195
ms, seeded); a real Prometheus (tests/promstack.py, 1 s scrapes, no exporters) scrapes it and a
node_exporter text fixture.  capplan's request rate must agree with the generator's truth within
5 % and its p95 within one bucket width, through PromQL, through raw bucket counters read from
Prometheus and through live /metrics scraping.  Figures are printed (pytest -s shows them).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from apiservice import BUCKETS, ApiService, run_load, uniform_delays
from httpservers import LocalServer
from promstack import PromStack, StackError

from capplan.collect import promql
from capplan.collect import prometheus as prom
from capplan.collect.http import scrape_metrics
from capplan.core.frame import concat_frames
from capplan.errors import ConfigError
from capplan.models import histogram as h

LOAD_S = 12.0
WORKERS = 6
LO, HI = 0.005, 0.195
FIGURES: dict = {}


def _width_at(x: float) -> float:
    """Width of the histogram bucket holding ``x``."""
    bounds = (0.0, *BUCKETS)
    for a, b in zip(bounds, bounds[1:]):
        if a < x <= b:
            return b - a
    return math.inf


@pytest.fixture(scope="module")
def node_exporter(fixtures_dir):
    base = (fixtures_dir / "prometheus" / "node_exporter_1.5_cpu_mem_fs_net.prom").read_text()
    hits = {"n": 0}

    def metrics(_req):
        hits["n"] += 1   # eth0 receives 1 MB per scrape; its link speed is 1 Gbit/s
        text = base.replace('node_network_receive_bytes_total{device="eth0"} 3.09409242e+08',
                            f'node_network_receive_bytes_total{{device="eth0"}} '
                            f'{3.09409242e+08 + 1e6 * hits["n"]:.0f}')
        text += ("# HELP node_network_speed_bytes speed_bytes\n# TYPE node_network_speed_bytes "
                 "gauge\nnode_network_speed_bytes{device=\"eth0\"} 1.25e+08\n")
        return 200, {"Content-Type": "text/plain; version=0.0.4"}, text.encode()

    srv = LocalServer({"/metrics": metrics})
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def api_stack(node_exporter):
    svc = ApiService().start()
    st = PromStack("", "", scrape_interval_s=1.0, exporters=False,
                   extra_targets={"api": f"127.0.0.1:{svc.port}",
                                  "node": f"127.0.0.1:{node_exporter.port}"})
    try:
        st.start()
    except StackError as exc:
        svc.stop()
        pytest.fail(f"cannot start Prometheus: {exc}", pytrace=False)
    try:
        time.sleep(2.5)     # Prometheus holds zeros before the load: windows start idle
        before = scrape_metrics(f"{svc.url}/metrics", source="api")
        t_before = time.time()
        truth = run_load(svc.url, seconds=LOAD_S, workers=WORKERS,
                         delays=uniform_delays(LO, HI, seed=14))
        time.sleep(2.5)     # two more scrapes see the final counts
        after = scrape_metrics(f"{svc.url}/metrics", source="api")
        t_after = time.time()
        yield {"svc": svc, "stack": st, "truth": truth, "live": concat_frames([before, after]),
               "t_before": t_before, "t_after": t_after}
    finally:
        st.stop()
        svc.stop()
        if FIGURES:
            print("\nreal-stack figures:", FIGURES)


def test_truth_is_what_we_think(api_stack):
    tr = api_stack["truth"]
    assert len(tr.delays) > 200, "the load generator completed too few requests"
    FIGURES["requests"] = len(tr.delays)
    FIGURES["truth_p95_s"] = round(tr.quantile(0.95), 5)


def test_promql_rate_and_p95_agree_with_truth(api_stack):
    tr, url = api_stack["truth"], api_stack["stack"].prometheus_url
    win = 5
    t0, t1 = math.ceil(tr.started) + win + 1, math.floor(tr.ended)
    rng = math.ceil(tr.ended - tr.started) + 3
    qs = promql.parse_queries([
        {"name": "api_request_rate", "unit": "requests/s",
         "promql": f'sum(rate(http_requests_total{{job="api"}}[{win}s]))'},
        {"name": "api_p95_latency", "unit": "seconds",
         "promql": f'histogram_quantile(0.95, sum by (le) (increase('
                   f'http_request_duration_seconds_bucket{{job="api"}}[{rng}s])))'},
    ])
    df = promql.fetch_queries(url, qs[:1], t0, t1, step=1, timeout_s=10)
    rate = float(df["value"].mean())
    truth_rate = tr.rate(t0 - win, t1)
    at = tr.ended + 2.4
    p95 = float(promql.fetch_queries(url, qs[1:], at - 1, at, step=1)["value"].iloc[-1])
    truth_p95 = tr.quantile(0.95)
    FIGURES.update(promql_rate=round(rate, 2), truth_rate=round(truth_rate, 2),
                   promql_p95_s=round(p95, 5))
    assert set(df["source"]) == {"prometheus"} and set(df["unit"]) == {"requests_per_second"}
    assert abs(rate - truth_rate) / truth_rate < 0.05
    assert abs(p95 - truth_p95) <= _width_at(truth_p95)


def test_raw_buckets_from_prometheus_agree_with_truth(api_stack, tmp_path):
    tr, url = api_stack["truth"], api_stack["stack"].prometheus_url
    qs = promql.parse_queries([
        {"name": "api_latency_seconds_bucket", "kind": "counter", "unit": "count",
         "promql": 'http_request_duration_seconds_bucket{job="api"}'},
        {"name": "api_requests_total", "kind": "counter", "unit": "requests",
         "promql": 'http_requests_total{job="api"}'},
    ])
    start, end = tr.started - 1.5, tr.ended + 2.4
    df = promql.fetch_queries(url, qs, start, end, step=1)
    assert set(df["source"]) == {f"prometheus:127.0.0.1:{api_stack['svc'].port}"}  # per instance
    b = h.histograms_from_frame(df, "api_latency_seconds_bucket")[()]
    q = h.quantile(0.95, b)
    req = df[df["metric"] == "api_requests_total"].sort_values("timestamp")
    inc = h.increase(req["value"].to_numpy())
    span = req["timestamp"].iloc[-1].timestamp() - req["timestamp"].iloc[0].timestamp()
    first = req["timestamp"].iloc[0].timestamp()
    truth_rate = tr.rate(first, req["timestamp"].iloc[-1].timestamp())
    FIGURES.update(raw_p95_s=round(q.value, 5), raw_bucket=(q.lower, q.upper),
                   raw_rate=round(inc / span, 2), raw_truth_rate=round(truth_rate, 2),
                   raw_n=b.total)
    assert b.total == pytest.approx(len(tr.delays), abs=2)
    assert abs(q.value - tr.quantile(0.95)) <= q.width
    assert abs(inc / span - truth_rate) / truth_rate < 0.05
    slo = h.fraction_below(0.1, b)    # 0.1 s is a bucket bound: exact
    assert slo.exact
    truth_frac = float(np.mean(np.asarray(tr.delays) <= 0.1))
    assert abs(slo.value - truth_frac) < 0.03       # measured durations add ~1 ms to each delay
    assert not h.fraction_below(0.11, b).exact
    from capplan.analysis import latency
    from capplan.store import open_store

    with open_store(str(tmp_path / "m.sqlite")) as st:     # the same through the store
        st.append(df)
        stored = latency.window_quantile(st, "api_latency_seconds_bucket", 0.95)
        assert stored.value == pytest.approx(q.value) and stored.n == b.total
        assert latency.slo_fraction(st, "api_latency_seconds_bucket", 0.1).exact


def test_live_metrics_scrape_agrees_with_truth(api_stack):
    tr, live = api_stack["truth"], api_stack["live"]
    b = h.histograms_from_frame(live, "http_request_duration_seconds_bucket")[()]
    q = h.quantile(0.95, b)
    cnt = live[live["metric"] == "http_requests_total"].sort_values("timestamp")
    span = api_stack["t_after"] - api_stack["t_before"]
    rate = h.increase(cnt["value"].to_numpy()) / span
    truth_rate = tr.rate(api_stack["t_before"], api_stack["t_after"])
    FIGURES.update(live_p95_s=round(q.value, 5), live_rate=round(rate, 2),
                   live_truth_rate=round(truth_rate, 2))
    assert b.total == len(tr.delays)
    assert abs(q.value - tr.quantile(0.95)) <= q.width
    assert abs(rate - truth_rate) / truth_rate < 0.05


def test_quantile_equals_prometheus_histogram_quantile_exactly(api_stack):
    url, at = api_stack["stack"].prometheus_url, api_stack["truth"].ended + 2.0
    for qv in (0.5, 0.9, 0.95, 0.99, 1.0):
        vec, _ = prom.instant_query(url, f'histogram_quantile({qv}, sum by (le) '
                                         f'(http_request_duration_seconds_bucket{{job="api"}}))',
                                    at=at)
        raw, _ = prom.instant_query(url, 'http_request_duration_seconds_bucket{job="api"}', at=at)
        ours = h.histogram_quantile(qv, [r["metric"]["le"] for r in raw],
                                    [float(r["value"][1]) for r in raw])
        assert ours == pytest.approx(float(vec[0]["value"][1]), rel=1e-12, abs=1e-12)


def test_node_exporter_preset_gives_limits_per_instance(api_stack, node_exporter):
    url = api_stack["stack"].prometheus_url
    qs = promql.preset_queries(["node_exporter"], node_selector='job="node"')
    end = time.time()
    df = promql.fetch_queries(url, qs, end - 6, end, step=1)
    src = f"prometheus:127.0.0.1:{node_exporter.port}"
    last = df[df["source"] == src].groupby("metric")["value"].last()
    assert last["node_cpu_cores"] == 2
    assert last["node_memory_limit_bytes"] == 2.5276514304e10
    assert last["node_memory_used_bytes"] == pytest.approx(2.5276514304e10 - 2.4184840192e10)
    assert last["node_filesystem_limit_bytes"] == 2.70553174016e11
    assert last["node_filesystem_used_bytes"] == pytest.approx(2.70553174016e11 - 8.2833371136e10)
    assert last["node_nic_speed_bytes"] == 1.25e8
    assert {"node_cpu_busy_seconds_total", "node_nic_receive_bytes_total"} <= set(last.index)
    assert df.attrs["empty_queries"] == []


def test_invalid_promql_quotes_prometheus_and_the_query(api_stack, monkeypatch):
    monkeypatch.setenv("CAPPLAN_TEST_PROM", api_stack["stack"].prometheus_url)
    cfg = {"url_env": "CAPPLAN_TEST_PROM", "days": 0.01,
           "queries": [{"name": "bad", "promql": "sum(rate(http_requests_total[5m])", "unit": "s"}]}
    with pytest.raises(ConfigError) as err:
        promql.validate_queries(cfg, path="params/x.yaml")
    msg = str(err.value)
    assert "unclosed left parenthesis" in msg and "sum(rate(http_requests_total[5m])" in msg
    assert "params/x.yaml" in msg and "prometheus.queries.bad" in msg
    cfg["queries"][0]["promql"] = 'sum(rate(http_requests_total{job="api"}[5m]))'
    assert promql.validate_queries(cfg) == ["bad"]


# -- params/prometheus.yaml and `capplan run` ----------------------------------------------------
def _params_copy(tmp_path, **prom_overrides):
    import yaml

    from conftest import ROOT

    raw = yaml.safe_load((ROOT / "params" / "prometheus.yaml").read_text())
    raw["prometheus"].update(prom_overrides)
    path = tmp_path / "prometheus.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path, raw


def test_shipped_node_queries_equal_the_preset(tmp_path):
    _path, raw = _params_copy(tmp_path)
    shipped = {q["name"]: q["promql"] for q in raw["prometheus"]["queries"]
               if q["name"].startswith("node_")}
    preset = {q.name: q.promql for q in promql.preset_queries(["node_exporter"],
                                                              node_selector='job="node"')}
    assert shipped == preset


def test_invalid_promql_exits_2_before_any_notebook(api_stack, tmp_path, monkeypatch, capsys):
    from capplan.cli import main

    monkeypatch.setenv("PROMETHEUS_URL", api_stack["stack"].prometheus_url)
    path, raw = _params_copy(tmp_path)
    raw["prometheus"]["queries"][0]["promql"] = 'sum(rate(http_requests_total{job="api"}[5m])'
    import yaml

    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = tmp_path / "outputs"
    code = main(["run", str(path), "--outputs", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "unclosed left parenthesis" in err and "api_request_rate" in err
    assert not any(out.glob("*/*/*.ipynb")), "a notebook ran"


def test_report_from_params_file_against_the_stack(api_stack, tmp_path, monkeypatch):
    """The shipped params file (window shortened to the stack's few minutes, 1 s step) gives a
    report with an API request-rate runway and a p95 latency target."""
    import json

    from capplan.runner.run import run_report

    monkeypatch.setenv("PROMETHEUS_URL", api_stack["stack"].prometheus_url)
    path, _raw = _params_copy(tmp_path, days=0.004, step=1)
    res = run_report(path, outputs=tmp_path / "outputs", cell_timeout_s=300)
    assert res.status in ("ok", "degraded"), res.notebooks
    summary = json.loads((res.run_dir / "summary.json").read_text())
    runway = {f["label"]: f for f in summary["sections"]["runway"]}
    targets = {f["label"]: f for f in summary["sections"]["targets"]}
    rate = runway["API request rate"]
    assert rate["value"] > 0 and rate["extra"]["limit"] == 350
    p95 = targets["API p95 latency"]
    assert p95["value"] is not None and 0.1 < p95["value"] < 0.3
    assert runway["CPU (busy cores)"]["extra"]["limit"] == 2
    md = (res.run_dir / "report.md").read_text()
    assert "API request rate" in md and "API p95 latency" in md
    FIGURES.update(report_rate=round(rate["value"], 2), report_p95_s=round(p95["value"], 4),
                   report_runway_status=rate["status"], report_target_status=p95["status"])


def test_history_with_fractional_days_and_auto_step(api_stack, monkeypatch):
    monkeypatch.setenv("CAPPLAN_TEST_PROM", api_stack["stack"].prometheus_url)
    frame, info = promql.history({
        "url_env": "CAPPLAN_TEST_PROM", "days": 0.01, "step": "auto", "metrics": [],
        "queries": [{"name": "api_requests_total", "kind": "counter", "unit": "requests",
                     "promql": 'http_requests_total{job="api"}'},
                    {"name": "nothing_here", "promql": 'absent_metric_xyz{job="api"}'}]})
    assert info["step_s"] == 15.0 and info["days"] == pytest.approx(0.01)
    assert info["empty_queries"] == ["nothing_here"] and info["points"]["api_requests_total"] > 0
    assert set(frame["metric"]) == {"api_requests_total"} and set(frame["kind"]) == {"counter"}
    assert info["end"] > info["start"]
