"""USL / Amdahl fits against the published reference fits in ../shared/reference/usl/.

Tolerances: the issue's 1e-4 relative, or half a unit in the last printed digit of the published
value when that is looser (R prints SPEC SDM91's kappa as 0.0001044 = 1.04365e-4 rounded).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from capplan.errors import FitError, InsufficientData
from capplan.models.usl import UslFit, fit_amdahl, fit_usl


def close(ours, published, *, rel=1e-4, text: str | None = None):
    """``ours`` matches ``published`` within ``rel`` or half a unit of the last printed digit."""
    text = text if text is not None else repr(published)
    mant = text.lower().split("e")[0]
    exp = int(text.lower().split("e")[1]) if "e" in text.lower() else 0
    decimals = len(mant.split(".")[1]) if "." in mant else 0
    half_ulp = 0.5 * 10.0 ** (exp - decimals)
    return abs(ours - published) <= max(rel * abs(published), half_ulp * (1 + 1e-9))


@pytest.fixture(scope="module")
def ref(shared_dir):
    base = shared_dir / "reference" / "usl"

    def load(name):
        return json.loads((base / f"{name}.json").read_text()), pd.read_csv(base / f"{name}.csv")

    return load


# -- SPEC SDM91: the anchor of the issue ---------------------------------------------------------

def test_specsdm91_reproduces_r_usl_package(ref):
    meta, d = ref("specsdm91")
    pub = meta["published_fits"][0]
    fit = fit_usl(d.N, d.X)
    for ours, name in ((fit.sigma, "alpha"), (fit.kappa, "beta"), (fit.lam, "gamma")):
        assert close(ours, pub["coefficients"][name]), (name, ours)
    # the issue's own numbers
    assert abs(fit.sigma / 0.0277285 - 1) < 1e-4
    assert abs(fit.lam / 89.99523 - 1) < 1e-4
    assert abs(fit.n_peak / 96.52 - 1) < 1e-4
    assert close(fit.kappa, 0.0001044)
    assert abs(fit.n_peak / pub["derived"]["N_peak"] - 1) < 1e-5   # usl tests: 96.51956, 1e-4
    assert abs(fit.x_ceiling / pub["derived"]["X_limit"] - 1) < 1e-5
    assert round(fit.x_peak) == pub["derived"]["X_peak_rounded"]
    for name, ours in (("alpha", "sigma"), ("beta", "kappa"), ("gamma", "lambda")):
        assert close(fit.stderr[ours], pub["std_errors"][name]), name
    assert close(fit.rse, pub["residual_std_error"]) and fit.df == pub["df"] == 4
    assert fit.n_points == 7 and fit.warnings == ()
    assert np.allclose(fit.residuals, pub["residuals"], atol=0.006)
    assert np.allclose(np.round(fit.fitted), pub["fitted"], atol=1)
    eff = fit.measured_efficiency()
    for n, e in pub["efficiency"].items():
        assert close(float(eff.loc[eff.n == float(n), "efficiency"].iloc[0]), e), n


def test_specsdm91_matches_sca_tools_to_five_digits(ref):
    meta, d = ref("specsdm91")
    pub = next(f for f in meta["published_fits"] if f["id"] == "sca_tools-lmfit")["test_asserts"]
    fit = fit_usl(d.N, d.X)
    assert abs(fit.sigma / pub["alpha"] - 1) < 1e-5
    assert abs(fit.kappa / pub["beta"] - 1) < 1e-5
    # lmfit's standard errors come from its own numerical Jacobian: ~1e-4 (tolerance_hint)
    assert abs(fit.stderr["sigma"] / pub["alpha_se"] - 1) < 1e-4
    assert abs(fit.stderr["kappa"] / pub["beta_se"] - 1) < 1e-4
    assert abs(fit.stderr["lambda"] / pub["gamma_se"] - 1) < 1e-4
    assert abs(fit.rse**2 * fit.df / pub["chi_square"] - 1) < 1e-6


def test_ci95_uses_t_with_n_minus_3_df_and_is_wider_than_r_usl(ref):
    _, d = ref("specsdm91")
    fit = fit_usl(d.N, d.X)
    t = stats.t.ppf(0.975, 4)
    r_quirk = stats.t.ppf(0.95, 6)  # usl R confint(): qt(level, n-1)
    for k, est in (("sigma", fit.sigma), ("kappa", fit.kappa), ("lambda", fit.lam)):
        lo, hi = fit.ci95[k]
        assert lo == pytest.approx(est - t * fit.stderr[k], rel=1e-12)
        assert hi == pytest.approx(est + t * fit.stderr[k], rel=1e-12)
        assert hi - lo > 2 * r_quirk * fit.stderr[k] * 1.4


def test_raytracer_first6_matches_r_and_its_confint_quirk(ref):
    meta, d = ref("raytracer")
    pub = next(f for f in meta["published_fits"] if f["id"] == "usl-R-3.x on raytracer[1:6]")
    fit = fit_usl(d.N[:6], d.X[:6], bounds_policy="clamp")
    for ours, name in ((fit.sigma, "alpha"), (fit.kappa, "beta"), (fit.lam, "gamma")):
        assert close(ours, pub["coefficients"][name]), name
    q = stats.t.ppf(0.95, 5)
    for ours, name in (("sigma", "alpha"), ("kappa", "beta"), ("lambda", "gamma")):
        est = {"sigma": fit.sigma, "kappa": fit.kappa, "lambda": fit.lam}[ours]
        r_lo, r_hi = pub["confint_printed"][name]
        assert close(est - q * fit.stderr[ours], r_lo, rel=0) and close(est + q * fit.stderr[ours], r_hi, rel=0)
        assert fit.ci95[ours][0] < r_lo and fit.ci95[ours][1] > r_hi  # ours is wider


# -- the other published fits --------------------------------------------------------------------

def test_cisco_reproduces_book_and_codahale(ref):
    meta, d = ref("cisco")
    book, coda, prefix = meta["published_fits"]
    fit = fit_usl(d.N, d.X)
    for ours, name in ((fit.sigma, "sigma"), (fit.kappa, "kappa"), (fit.lam, "lambda")):
        assert abs(ours / book["coefficients"][name] - 1) < 1e-5, name  # Go/Rust: 1e-5
    assert math.floor(fit.n_peak) == book["derived"]["N_max_floor"] == 35
    assert math.floor(fit.throughput_at(35)) == book["derived"]["X_max_at_35"]  # book truncates
    for n, x in coda["derived"]["X_at"].items():
        assert abs(fit.throughput_at(float(n)) / x - 1) < 1e-5
    for n, r in coda["derived"]["R_at"].items():
        assert abs(fit.latency_at(float(n)) / r - 1) < 1e-5
    first10 = fit_usl(d.N[:10], d.X[:10])
    for r, n in coda["derived"]["N_at_R_first10pts"].items():
        assert abs(first10.concurrency_at_latency(float(r)) / n - 1) < 1e-5
    pv = prefix["published_values"]
    assert math.floor(first10.n_peak) == pv["N_at_X_max"]
    assert math.floor(first10.throughput_at(46)) == pv["X_max"]  # the book truncates
    assert math.floor(first10.throughput_at(20)) == pv["X_at_20"]
    assert close(first10.latency_at(20), pv["R_at_20_s"], rel=0)
    assert math.floor(first10.concurrency_at_latency(pv["R_SLO_s"])) == pv["N_at_R_SLO"]
    amd = fit_amdahl(d.N, d.X)
    assert abs(amd.sigma / meta["reproduction"]["amdahl_full"]["sigma"] - 1) < 1e-5
    assert abs(amd.lam / meta["reproduction"]["amdahl_full"]["lambda"] - 1) < 1e-5
    assert amd.kappa == 0 and amd.df == 30 and amd.n_peak is None


def test_codahale_go_cli_on_rounded_sdm91(ref):
    meta, d = ref("specsdm91_rounded")
    pub = meta["published_fits"][0]
    fit = fit_usl(d.N, d.X)
    # the Go optimiser stopped ~4e-5 short of the optimum (see the JSON notes): 2e-4 relative
    for ours, name in ((fit.sigma, "sigma"), (fit.kappa, "kappa"), (fit.lam, "lambda")):
        assert abs(ours / pub["coefficients"][name] - 1) < 2e-4, name
    assert abs(fit.x_peak / pub["derived"]["max_throughput"] - 1) < 1e-4
    assert math.floor(fit.n_peak) == pub["derived"]["max_concurrency"]
    for n, x in pub["derived"]["predictions"].items():
        assert abs(fit.throughput_at(float(n)) / x - 1) < 1e-4, n


@pytest.mark.parametrize("name", ["usl_issue7_pods", "usl_synthetic", "usl_v1_no_n1"])
def test_small_published_fits(ref, name):
    meta, d = ref(name)
    pub = meta["published_fits"][0]
    fit = fit_usl(d.N, d.X)
    coef = pub["coefficients"]
    pairs = [(fit.sigma, coef.get("alpha", coef.get("sigma"))),
             (fit.kappa, coef.get("beta", coef.get("kappa"))),
             (fit.lam, coef.get("gamma", coef.get("scale_factor")))]
    for ours, published in pairs:
        assert close(ours, published, text=_printed(published, name)), (ours, published)


def _printed(v, name):
    # usl_synthetic is printed with 3 significant digits (0.02 -> "0.0200", 1.0 -> "1.00")
    return f"{v:.3g}" if name != "usl_synthetic" else f"{v:.2e}"


def test_issue7_pods_standard_errors_and_derived(ref):
    meta, d = ref("usl_issue7_pods")
    pub = meta["published_fits"][0]
    fit = fit_usl(d.N, d.X)
    for ours, name in (("sigma", "alpha"), ("kappa", "beta"), ("lambda", "gamma")):
        assert close(fit.stderr[ours], pub["std_errors"][name])
    assert close(fit.rse, pub["residual_std_error"]) and fit.df == 3
    der = pub["derived"]
    assert close(fit.x_ceiling, der["X_limit"]) and close(fit.x_peak, der["X_peak"])
    assert close(fit.n_peak, der["N_peak"])


def test_isilon_first9(ref):
    meta, d = ref("isilon")
    pub = meta["published_fits"][0]["coefficients"]
    fit = fit_usl(d.N[:9], d.X[:9])
    assert close(fit.sigma, pub["sigma"]) and close(fit.kappa, pub["kappa"])
    assert close(fit.lam, pub["lambda"])


def test_v1_no_n1_warns_lambda_is_extrapolated(ref):
    _, d = ref("usl_v1_no_n1")
    assert any("no point at N = 1" in w for w in fit_usl(d.N, d.X).warnings)


def test_our_own_reproductions(ref):
    """Regression anchors computed for capplan (not published): bounded and unbounded fits."""
    for name, key, policy, rows in (("oracledb", "usl3", "clamp", None),
                                     ("handlersocket", "usl3_full_unbounded", "report", None),
                                     ("handlersocket", "usl3_first15_bounded", "clamp", 15),
                                     ("raytracer", "usl3_full", "clamp", None)):
        meta, d = ref(name)
        rep = meta["reproduction"][key]
        d = d if rows is None else d.iloc[:rows]
        fit = fit_usl(d.N, d.X, bounds_policy=policy)
        assert abs(fit.sigma / rep["alpha"] - 1) < 1e-5, name
        assert abs(fit.lam / rep["gamma"] - 1) < 1e-5, name
        if rep["beta"] > 1e-20:
            assert abs(fit.kappa / rep["beta"] - 1) < 1e-5, name
        else:
            assert fit.kappa == 0.0 and fit.n_peak is None


def test_raytracer_full_kappa_policy(ref):
    meta, d = ref("raytracer")
    rep = fit_usl(d.N, d.X)  # unconstrained optimum has kappa < 0: reported, not clamped
    assert rep.kappa < 0 and rep.n_peak is None and rep.x_peak is None
    assert any("kappa" in w and "< 0" in w for w in rep.warnings)
    clamped = fit_usl(d.N, d.X, bounds_policy="clamp")
    assert clamped.kappa == 0.0 and any("rests on its bound" in w for w in clamped.warnings)
    want = meta["reproduction"]["predict_full_usl3"]
    pred = clamped.predict(want["N"])
    assert np.allclose(pred.x, want["X"], rtol=1e-5)
    with pytest.raises(FitError, match="negative"):
        fit_usl(d.N, d.X, bounds_policy="raise")


def test_paypal_published_values_are_not_least_squares(ref):
    meta, d = ref("paypal_nodejs")
    fit = fit_usl(d.N, d.X)
    rep = meta["reproduction"]["usl3_unbounded"]
    assert abs(fit.sigma / rep["alpha"] - 1) < 1e-5
    assert abs(fit.sigma - meta["published_fits"][0]["coefficients"]["sigma"]) > 1e-3


@pytest.mark.parametrize("name", ["voltdb", "paypal_java"])
def test_fewer_than_six_points_is_refused(ref, name):
    _, d = ref(name)
    with pytest.raises(InsufficientData) as err:
        fit_usl(d.N, d.X)
    assert err.value.needed == 6 and err.value.have == 4


def test_too_few_points_fixture(fixtures_dir):
    d = pd.read_csv(fixtures_dir / "usl" / "usl_too_few_points.csv")
    with pytest.raises(InsufficientData, match="at least 6"):
        fit_usl(d.N, d.X)
    with pytest.raises(InsufficientData, match="concurrency levels"):
        fit_usl([1, 1, 2, 2, 4, 4], [1, 1.1, 2, 2.1, 3.5, 3.6])


# -- policies, intervals and forms ---------------------------------------------------------------

def test_negative_sigma_is_reported_not_clamped(fixtures_dir):
    d = pd.read_csv(fixtures_dir / "usl" / "usl_superlinear.csv")
    fit = fit_usl(d.N, d.X)
    assert fit.sigma < 0 and fit.x_ceiling is None
    assert any("superlinear" in w for w in fit.warnings)
    assert fit.to_dict()["x_ceiling"] is None
    clamped = fit_usl(d.N, d.X, bounds_policy="clamp")
    assert clamped.sigma == 0.0 and any("sigma rests on its bound" in w for w in clamped.warnings)
    with pytest.raises(FitError, match="superlinear"):
        fit_usl(d.N, d.X, bounds_policy="raise")
    with pytest.raises(FitError, match="bounds_policy"):
        fit_usl(d.N, d.X, bounds_policy="ignore")


def _profile_rss(n, x, n_peak):
    """Minimum RSS with N* held at ``n_peak`` (kappa = (1 - sigma)/N*^2), independent of fit_usl."""
    def resid(p):
        s, lam = p
        k = (1 - s) / n_peak**2
        return lam * n / (1 + s * (n - 1) + k * n * (n - 1)) - x
    best = min((optimize.least_squares(resid, [s0, max(x / n)], method="lm", xtol=1e-14,
                                       ftol=1e-14) for s0 in (0.0, 0.05, 0.2)), key=lambda r: r.cost)
    return 2 * best.cost


@pytest.mark.parametrize("name", ["specsdm91", "cisco"])
def test_n_peak_interval_is_the_profile_likelihood_interval(ref, name):
    _, d = ref(name)
    n, x = d.N.to_numpy(float), d.X.to_numpy(float)
    fit = fit_usl(n, x)
    rss_min = fit.rse**2 * fit.df
    increment = fit.rse**2 * stats.t.ppf(0.975, fit.df) ** 2
    lo, hi = fit.n_peak_ci95
    assert lo < fit.n_peak < hi
    for end in (lo, hi):
        assert _profile_rss(n, x, end) == pytest.approx(rss_min + increment, rel=0.01 * increment / rss_min + 1e-3)
    # a bit inside the interval the profile RSS is below the limit, a bit outside above it
    assert _profile_rss(n, x, lo * 1.02) < rss_min + increment < _profile_rss(n, x, lo * 0.98)
    assert _profile_rss(n, x, hi * 0.98) < rss_min + increment < _profile_rss(n, x, hi * 1.02)


def test_derived_intervals_contain_estimates_and_open_when_unbounded(ref):
    _, d = ref("specsdm91")
    fit = fit_usl(d.N, d.X)
    for est, (lo, hi) in ((fit.n_peak, fit.n_peak_ci95), (fit.x_peak, fit.x_peak_ci95),
                          (fit.x_ceiling, fit.x_ceiling_ci95)):
        assert lo < est < hi
    _, pods = ref("usl_issue7_pods")  # kappa's interval reaches 0: N* has no upper bound
    wide = fit_usl(pods.N, pods.X)
    assert wide.ci95["kappa"][0] < 0 and wide.n_peak_ci95[1] is None
    assert wide.to_dict()["n_peak_ci95"][1] is None


def test_prediction_intervals_and_extrapolation_flag(ref):
    _, d = ref("specsdm91")
    fit = fit_usl(d.N, d.X)
    pred = fit.predict([1, 72, 216, 432, 500])
    assert list(pred.columns) == ["n", "x", "x_lo95", "x_hi95", "extrapolated"]
    assert pred.extrapolated.tolist() == [False, False, False, False, True]
    assert (pred.x_lo95 <= pred.x).all() and (pred.x <= pred.x_hi95).all()
    conf = fit.predict([72], interval="confidence")
    t = stats.t.ppf(0.975, fit.df)
    # prediction half-width^2 = confidence half-width^2 + (t s)^2
    hw_p = float(pred.x_hi95[1] - pred.x[1])
    hw_c = float(conf.x_hi95[0] - conf.x[0])
    assert hw_p**2 == pytest.approx(hw_c**2 + (t * fit.rse) ** 2, rel=1e-9)
    inside = sum(lo <= xx <= hi for xx, lo, hi in zip(d.X, *fit.predict(d.N)[["x_lo95", "x_hi95"]].T.values))
    assert inside == len(d)


def test_latency_forms_through_littles_law(ref):
    _, d = ref("cisco")
    fit = fit_usl(d.N, d.X)
    for n in (1.0, 10.0, 35.0, 80.0):
        assert fit.latency_at(n) == pytest.approx(n / fit.throughput_at(n), rel=1e-12)
    r = fit.latency_at(20.0)
    assert fit.concurrency_at_latency(r) == pytest.approx(20.0, rel=1e-9)
    assert fit.throughput_at_latency(r) == pytest.approx(fit.throughput_at(20.0), rel=1e-9)
    assert fit.concurrency_at_latency(0.5 / fit.lam) is None  # faster than one user sees
    assert fit.latency_at(10, think_time_s=0.001) == pytest.approx(fit.latency_at(10) - 0.001)
    # R(X) is two-valued: the same X below and above N*
    x = fit.throughput_at(20.0)
    low, high = fit.latency_at_throughput(x), fit.latency_at_throughput(x, branch="upper")
    assert low == pytest.approx(r, rel=1e-9)
    n_high = high * x
    assert n_high > fit.n_peak and fit.throughput_at(n_high) == pytest.approx(x, rel=1e-9)
    assert fit.latency_at_throughput(fit.x_peak * 1.01) is None


def test_efficiency(ref):
    _, d = ref("specsdm91")
    fit = fit_usl(d.N, d.X)
    ns = np.array([1.0, 18.0, 216.0])
    assert np.allclose(fit.efficiency(ns), fit.throughput_at(ns) / (fit.lam * ns))
    assert fit.efficiency(1.0) == pytest.approx(1.0)


def test_replicates_enter_the_fit(ref):
    _, d = ref("specsdm91")
    once = fit_usl(d.N, d.X)
    twice = fit_usl(np.r_[d.N, d.N], np.r_[d.X, d.X])
    assert twice.sigma == pytest.approx(once.sigma, rel=1e-7)
    assert twice.n_points == 14 and twice.df == 11 and twice.n_levels == 7
    assert twice.stderr["sigma"] < once.stderr["sigma"]


def test_invalid_values_are_refused():
    with pytest.raises(FitError, match="n\\[2\\]"):
        fit_usl([1, 2, -4, 8, 16, 32], [1, 2, 3, 4, 5, 6])
    with pytest.raises(FitError, match="x\\[0\\]"):
        fit_usl([1, 2, 4, 8, 16, 32], [float("nan"), 2, 3, 4, 5, 6])
    with pytest.raises(FitError, match="6 values"):
        fit_usl([1, 2, 4, 8, 16, 32], [1, 2, 3])


def test_to_dict_is_json_with_the_contract_keys(ref):
    _, d = ref("specsdm91")
    fit = fit_usl(d.N, d.X)
    out = json.loads(json.dumps(fit.to_dict(), allow_nan=False))
    for key in ("sigma", "kappa", "lambda", "stderr", "ci95", "n_peak", "n_peak_ci95", "x_peak",
                "x_peak_ci95", "x_ceiling", "n_points", "rse", "df", "warnings"):
        assert key in out
    assert set(out["stderr"]) == set(out["ci95"]) == {"sigma", "kappa", "lambda"}
    assert out["lambda"] == fit.lam and out["schema_version"] == 1
    assert isinstance(fit, UslFit)
    with pytest.raises(Exception):
        fit.sigma = 0.5  # frozen


# -- the command line contract (capplan usl) -----------------------------------------------------

CONTRACT_KEYS = {"sigma", "kappa", "lambda", "stderr", "ci95", "n_peak", "n_peak_ci95", "x_peak",
                 "x_peak_ci95", "x_ceiling", "n_points", "rse", "df", "warnings"}


def run_cli(python_exe, *args):
    import subprocess

    return subprocess.run([python_exe, "-m", "capplan", "usl", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_cli_usl_json_contract(python_exe, shared_dir):
    res = run_cli(python_exe, shared_dir / "reference" / "usl" / "specsdm91.csv", "--json",
                  "--predict", "64,128,500")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert CONTRACT_KEYS | {"predictions"} <= set(out)
    assert abs(out["sigma"] / 0.0277285 - 1) < 1e-4 and abs(out["n_peak"] / 96.52 - 1) < 1e-4
    assert set(out["stderr"]) == {"sigma", "kappa", "lambda"}
    assert all(len(v) == 2 and v[0] < v[1] for v in out["ci95"].values())
    assert len(out["n_peak_ci95"]) == 2 and out["df"] == 4 and out["n_points"] == 7
    assert isinstance(out["warnings"], list)
    preds = out["predictions"]
    assert [p["n"] for p in preds] == [64, 128, 500]
    assert set(preds[0]) == {"n", "x", "x_lo95", "x_hi95", "extrapolated"}
    assert [p["extrapolated"] for p in preds] == [False, False, True]
    assert preds[0]["x_lo95"] < preds[0]["x"] < preds[0]["x_hi95"]


@pytest.mark.parametrize("header,n_name,x_name", [
    ("N,X", "N", "X"), ("concurrency,throughput", "concurrency", "throughput"),
    ("clients,tps", "clients", "tps"), ("VUs,RPS", "VUs", "RPS"),
    ("users,throughput", "users", "throughput")])
def test_cli_recognises_column_names(shared_dir, tmp_path, capsys, header, n_name, x_name):
    from capplan.cli import main  # in-process: the subprocess path is covered above

    d = pd.read_csv(shared_dir / "reference" / "usl" / "specsdm91.csv")
    path = tmp_path / "points.csv"
    d.rename(columns={"N": n_name, "X": x_name}).assign(extra="a").to_csv(path, index=False)
    assert main(["usl", str(path), "--json"]) == 0
    assert abs(json.loads(capsys.readouterr().out)["lambda"] / 89.99523 - 1) < 1e-4


def test_cli_replicates_and_explicit_columns(python_exe, fixtures_dir):
    res = run_cli(python_exe, fixtures_dir / "usl" / "usl_replicates_clients_tps.csv", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["n_points"] == 10 and out["df"] == 7 and out["n_levels"] == 7
    res = run_cli(python_exe, fixtures_dir / "usl" / "usl_unknown_columns.csv", "--json",
                  "--n-col", "threads", "--x-col", "qps")
    assert res.returncode == 0 and json.loads(res.stdout)["n_points"] == 6


def test_cli_text_output(shared_dir, capsys):
    from capplan.cli import main

    assert main(["usl", str(shared_dir / "reference" / "usl" / "raytracer.csv"), "--predict", "96"]) == 0
    out = capsys.readouterr().out
    assert "sigma" in out and "warning: kappa" in out and "X(96)" in out


@pytest.mark.parametrize("fixture,extra,needle", [
    ("usl_too_few_points.csv", [], "at least 6"),
    # file, line and column, never the cell's text (issue 10)
    ("usl_non_numeric_cell.csv", [], "usl_non_numeric_cell.csv:4: column 'users': not a finite"),
    ("usl_unknown_columns.csv", [], "cannot tell the concurrency column"),
    ("usl_ambiguous_columns.csv", [], "several: clients, users"),
    ("usl_unknown_columns.csv", ["--n-col", "nope"], "no column 'nope'"),
    ("usl_replicates_clients_tps.csv", ["--predict", "1,abc"], "--predict"),
    ("does_not_exist.csv", [], "cannot read"),
])
def test_cli_unusable_input_exits_2_with_one_line(fixtures_dir, capsys, fixture, extra, needle):
    from capplan.cli import main

    assert main(["usl", str(fixtures_dir / "usl" / fixture), "--json", *extra]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("capplan usl: ") and needle in err[0], err


def test_cli_unusable_input_subprocess(python_exe, fixtures_dir):
    res = run_cli(python_exe, fixtures_dir / "usl" / "usl_too_few_points.csv", "--json")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "have 5 points, need at least 6" in res.stderr


def test_handlersocket_prefix_negative_kappa_policies(ref):
    meta, d = ref("handlersocket")
    rep = meta["reproduction"]["usl3_first15_unbounded"]
    first15 = d.iloc[:15]
    fit = fit_usl(first15.N, first15.X)
    assert abs(fit.kappa / rep["beta"] - 1) < 1e-5 and fit.kappa < 0 and fit.n_peak is None
    assert any("kappa" in w for w in fit.warnings)
    with pytest.raises(FitError, match="kappa"):
        fit_usl(first15.N, first15.X, bounds_policy="raise")


# -- serialisation: from_dict and the committed fixtures (STYLE.md "Models") --------------------

USL_FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "usl"


def _same(a, b):
    """Exact equality, NaN equal to NaN, tuples/lists/dicts compared element by element."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b and (type(a) is type(b) or isinstance(a, float))  # np.float64 is a float


@pytest.mark.parametrize("path", sorted(USL_FIXTURES.glob("uslfit_v*_specsdm91.json")),
                         ids=lambda p: p.name)
def test_committed_uslfit_fixture_loads_and_matches_a_fresh_fit(path, ref):
    from capplan.models.usl import SCHEMA_VERSION

    doc = json.loads(path.read_text())
    assert 1 <= doc["schema_version"] <= SCHEMA_VERSION
    old = UslFit.from_dict(doc)
    _, d = ref("specsdm91")
    new = fit_usl(d.N, d.X)
    # the fixture was written on another machine: least squares stops (ftol 1e-14) at a point
    # that differs in the 8th digit between numpy/scipy/BLAS builds (3e-8 seen on numpy 2.4 /
    # scipy 1.17); a format change would break far more than this
    rel = 1e-6
    for k in ("sigma", "kappa", "lam", "rse", "n_peak", "x_peak", "x_ceiling", "r_squared",
              "n_max_tested"):
        assert getattr(old, k) == pytest.approx(getattr(new, k), rel=rel), k
    for k in ("df", "n_points", "n_levels", "model", "bounds_policy", "warnings", "n_data"):
        assert getattr(old, k) == getattr(new, k), k
    for k in ("sigma", "kappa", "lambda"):
        assert old.stderr[k] == pytest.approx(new.stderr[k], rel=rel)
        assert old.ci95[k] == pytest.approx(new.ci95[k], rel=rel)
    for k in ("n_peak_ci95", "x_peak_ci95", "x_ceiling_ci95"):
        assert getattr(old, k) == pytest.approx(getattr(new, k), rel=1e-6), k  # profile search
    assert np.allclose(old.cov, new.cov, rtol=rel, atol=0)
    ns = [1, 10, 72, 96.5, 216, 432, 1000]
    for interval in ("prediction", "confidence"):
        a, b = old.predict(ns, interval=interval), new.predict(ns, interval=interval)
        assert list(a.columns) == list(b.columns)
        for col in ("n", "x", "x_lo95", "x_hi95"):
            assert np.allclose(a[col], b[col], rtol=rel, atol=0), (interval, col)
        assert a.extrapolated.tolist() == b.extrapolated.tolist()
    assert np.allclose(old.latency_at(ns), new.latency_at(ns), rtol=rel, atol=0)
    assert np.allclose(old.efficiency(ns), new.efficiency(ns), rtol=rel, atol=0)
    r = 0.05
    assert old.concurrency_at_latency(r) == pytest.approx(new.concurrency_at_latency(r), rel=rel)
    assert np.allclose(old.residuals, new.residuals, rtol=rel, atol=1e-4)
    assert np.allclose(old.measured_efficiency().efficiency, new.measured_efficiency().efficiency,
                       rtol=rel, atol=0)


def test_v1_document_without_cov_still_loads(ref):
    """What `capplan usl --json` wrote before the reload keys existed: coefficients load."""
    doc = json.loads((USL_FIXTURES / "uslfit_v1_specsdm91_without_cov.json").read_text())
    assert doc["schema_version"] == 1 and "cov" not in doc and "n_data" not in doc
    old = UslFit.from_dict(doc)
    _, d = ref("specsdm91")
    new = fit_usl(d.N, d.X)
    rel = 1e-6  # see test_committed_uslfit_fixture_loads_and_matches_a_fresh_fit
    assert old.sigma == pytest.approx(new.sigma, rel=rel)
    assert old.throughput_at(72) == pytest.approx(new.throughput_at(72), rel=rel)
    assert old.latency_at(72) == pytest.approx(new.latency_at(72), rel=rel)
    assert old.n_peak_ci95 == pytest.approx(new.n_peak_ci95, rel=1e-6)
    assert old.cov == () and old.residuals.size == 0
    with pytest.raises(FitError, match="no covariance matrix"):
        old.predict([72])


@pytest.mark.parametrize("name,fitter,policy", [
    ("specsdm91", fit_usl, "report"), ("specsdm91", fit_amdahl, "report"),
    ("cisco", fit_amdahl, "clamp"), ("raytracer", fit_usl, "clamp"),
    ("raytracer", fit_usl, "report"), ("usl_issue7_pods", fit_usl, "report")])
def test_from_dict_round_trips_exactly(ref, name, fitter, policy):
    from dataclasses import fields

    _, d = ref(name)
    fit = fitter(d.N, d.X, bounds_policy=policy)
    text = json.dumps(fit.to_dict(), allow_nan=False)
    back = UslFit.from_dict(json.loads(text))
    for f in fields(UslFit):
        assert _same(getattr(back, f.name), tuple(map(tuple, getattr(fit, f.name)))
                     if f.name == "cov" else getattr(fit, f.name)), f.name
    assert json.dumps(back.to_dict(), allow_nan=False) == text
    ns = [1, 5, 50, 500]
    pd.testing.assert_frame_equal(back.predict(ns), fit.predict(ns))
    pd.testing.assert_frame_equal(back.predict(ns, interval="confidence", level=0.8),
                                  fit.predict(ns, interval="confidence", level=0.8))
    assert np.array_equal(back.residuals, fit.residuals)
    pd.testing.assert_frame_equal(back.measured_efficiency(), fit.measured_efficiency())
    assert back.latency_at_throughput(fit.throughput_at(3)) == fit.latency_at_throughput(
        fit.throughput_at(3))


def test_from_dict_reads_cli_output_and_refuses_bad_documents(shared_dir, capsys):
    from capplan.cli import main
    from capplan.models.usl import SCHEMA_VERSION

    assert main(["usl", str(shared_dir / "reference" / "usl" / "specsdm91.csv"), "--json",
                 "--predict", "64"]) == 0
    doc = json.loads(capsys.readouterr().out)
    fit = UslFit.from_dict(doc)  # the extra "predictions" key is ignored
    assert fit.predict([64]).x_hi95[0] == doc["predictions"][0]["x_hi95"]

    with pytest.raises(FitError, match=f"schema_version {SCHEMA_VERSION + 1}, newer than this "
                                       f"capplan reads \\(up to {SCHEMA_VERSION}\\)") as err:
        UslFit.from_dict({**doc, "schema_version": SCHEMA_VERSION + 1})
    assert "upgrade capplan" in err.value.hint
    for bad, needle in (({k: v for k, v in doc.items() if k != "schema_version"}, "schema_version"),
                        ({**doc, "schema_version": "1"}, "schema_version"),
                        ({k: v for k, v in doc.items() if k not in ("df", "rse")},
                         "lacks key\\(s\\) rse, df"),
                        ({**doc, "cov": [[1.0, 0.0], [0.0, 1.0]]}, "'cov' must be a 3x3"),
                        ({**doc, "n_data": doc["n_data"][:-1]}, "n_data has 6 values"),
                        ({**doc, "model": "gompertz"}, "'model'"),
                        ({**doc, "sigma": None}, "'sigma' must be a finite number"),
                        ({**doc, "ci95": {"sigma": [0, 1]}}, "'ci95'"),
                        ([1, 2], "expected a dict")):
        with pytest.raises(FitError, match=needle):
            UslFit.from_dict(bad)
