"""Is P(cross within horizon) a probability?  Calibration of runway probabilities (issue 12).

Protocol (the issue's): every ``*.csv`` under the data directories (default the 23 dev series in
``../shared/data/dev`` and the 6 in ``../shared/data/nab``), resampled to hourly means; cut points at
60, 70 and 80 % of the series; horizon ``H = min(168 h, rest of the series)``; limits at 0.9, 1.0
and 1.15 x the peak of the last 14 days before the cut.  A case is *positive* when the held-out
hours reach the limit within ``H``.

Printed: the Brier score of capplan's ``p_cross_within_horizon``, beside two baselines

* **base rate**: a constant predictor at the share of positive cases (an in-sample oracle);
* **historical analog**: how often did windows of length ``H`` in the last eight weeks before the
  cut (starting every hour) reach this limit;

reliability per probability bin (cases, mean predicted, observed frequency), the number of
*contradictions* (status 'crosses' beside P < 0.5, or 'not within horizon' beside P >= 0.5), and a
per-series table.

The reported P is the calibrated stack of :mod:`capplan.models.runway_prob`, whose coefficients
were fitted on these same cases, so the headline Brier is in-sample.  The held-out figures re-fit
the coefficients (Brier loss, Nelder-Mead) without the series scored -- leave one series out, and
leave one source kind out (Azure VM CPU, dependency latency, Twitter volumes, NAB server metrics)
-- and score it: these predict what happens on series the model has never seen.  (The stack's
form -- its features, WIDEN and TRUST -- was itself chosen among some 30 variants by these
held-out scores on the same 29 series, so they are somewhat optimistic.)  ``paths only``
is the raw share of the joint paths (the first round's P).  Usage::

    python bench/runway_calibration.py [DATA_DIR ...]

The last line is one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from capplan.collect.files import read_series_csv
from capplan.models import runway_prob
from capplan.models.growth import fit_forecast, time_to_limit

CUTS = (0.6, 0.7, 0.8)
FACTORS = (0.9, 1.0, 1.15)
H_MAX = 168
PEAK_WINDOW = 14 * 24
ANALOG_WINDOW = 8 * 7 * 24
BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0000001)


def analog(train: np.ndarray, limit: float, h: int) -> float:
    """Share of length-h windows in the last eight weeks of ``train`` whose max reaches limit."""
    x = train[-ANALOG_WINDOW:]
    x = np.where(np.isnan(x), -np.inf, x)
    if x.size <= h:
        return float(np.max(x) >= limit)
    hit = x >= limit
    cs = np.concatenate(([0], np.cumsum(hit)))
    starts = np.arange(0, x.size - h + 1)
    return float(np.mean(cs[starts + h] - cs[starts] > 0))


def cases_for(path: Path) -> list[dict]:
    y = read_series_csv(path).resample("1h").mean()
    n = len(y)
    out = []
    for cut in CUTS:
        c = int(round(cut * n))
        h = min(H_MAX, n - c)
        train, test = y.iloc[:c], y.iloc[c:c + h].to_numpy(float)
        tr = train.to_numpy(float)
        peak = float(np.nanmax(tr[-PEAK_WINDOW:]))
        t0 = time.perf_counter()
        fc = fit_forecast(train, horizon=h, grain="1h")
        rws = [time_to_limit(fc, f * peak) for f in FACTORS]
        ms = 1000 * (time.perf_counter() - t0)
        for f, rw in zip(FACTORS, rws):
            limit = f * peak
            p = float(rw.p_cross_within_horizon)
            out.append({"series": path.stem, "cut": cut, "factor": f, "h": h, "p": p,
                        "p_paths": rw.p_paths, "p_wide": rw.p_wide, "p_analog": rw.p_analog,
                        "clean": bool(fc.trend_up and fc.trend_t >= runway_prob.CLEAN_TREND_T),
                        "status": rw.status, "analog": analog(tr, limit, h),
                        "hit": bool(np.nanmax(test) >= limit), "ms": ms / len(FACTORS)})
    return out


def kind_of(series: str) -> str:
    for prefix, kind in (("azure_vm_cpu", "azure"), ("cmd_dependency", "latency"),
                         ("nab_twitter", "twitter")):
        if series.startswith(prefix):
            return kind
    return "nab"


def _fit_coef(cs: list[dict]) -> np.ndarray:
    """runway_prob.fit_coef on these cases (the loss of the probability as reported)."""
    cs = [c for c in cs if c["p_paths"] is not None]     # 'already over limit' cases: P = 1
    return runway_prob.fit_coef([c["p_paths"] for c in cs], [c["p_wide"] for c in cs],
                                [c["p_analog"] for c in cs], [c["hit"] for c in cs],
                                clean_trend=[c["clean"] for c in cs])


def held_out(cases: list[dict], group) -> np.ndarray:
    """P of every case from coefficients re-fitted without the case's group."""
    out = np.empty(len(cases))
    groups = [group(c) for c in cases]
    for g in sorted(set(groups)):
        train = [c for c, k in zip(cases, groups) if k != g]
        b = _fit_coef(train)
        for i, (c, k) in enumerate(zip(cases, groups)):
            if k == g and c["p_paths"] is None:
                out[i] = c["p"]
            elif k == g:
                out[i] = runway_prob.calibrated(c["p_paths"], c["p_wide"], c["p_analog"], coef=b,
                                                clean_trend=c["clean"])
    return out


def reliability(p: np.ndarray, hit: np.ndarray, name: str) -> tuple[list, float]:
    """Per bin: cases, mean P, observed frequency, and the standard deviation the observed
    frequency would have if P were exactly calibrated (sqrt(sum p(1-p)) / k: a bin of 16 cases at
    P ~ 0.55 has 0.12, more than the 0.10 tolerance -- Broecker & Smith 2007's consistency bars)."""
    print(f"{name}\n{'bin':>11s} {'cases':>5s} {'mean P':>7s} {'observed':>8s} {'|gap|':>6s} "
          f"{'sd if calibrated':>16s}")
    bins = []
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        sel = (p >= lo) & (p < hi)
        k = int(sel.sum())
        if k == 0:
            continue
        mp, obs = float(p[sel].mean()), float(hit[sel].mean())
        sd = float(np.sqrt(np.sum(p[sel] * (1 - p[sel]))) / k)
        bins.append({"bin": [lo, min(hi, 1.0)], "cases": k, "mean_p": round(mp, 4),
                     "observed": round(obs, 4), "sd_if_calibrated": round(sd, 4)})
        flag = "" if k < 15 or abs(mp - obs) <= 0.10 else "  <- off by more than 0.10"
        if abs(mp - obs) > 2 * sd and sd > 0:
            flag += " (beyond 2 sd: miscalibrated, not only noise)"
        print(f"{lo:4.1f}–{min(hi, 1.0):4.1f} {k:7d} {mp:7.3f} {obs:8.3f} {abs(mp - obs):6.3f} "
              f"{sd:16.3f}{flag}")
    big = [b for b in bins if b["cases"] >= 15]
    worst = max((abs(b["mean_p"] - b["observed"]) for b in big), default=float("nan"))
    return bins, worst


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[1]
    dirs = [Path(a) for a in argv[1:]] or [root.parent / "shared" / "data" / "dev",
                                             root.parent / "shared" / "data" / "nab"]
    files = sorted(f for d in dirs for f in d.glob("*.csv") if f.name != "SOURCES.csv")
    if not files:
        print(f"no CSV files in {', '.join(map(str, dirs))}: this bench reads capplan's shared "
              "developer data (the shared/ folder placed beside the checkout, with data/dev and "
              "data/nab; tests/shared/README.md); or pass folders of timestamp,value CSVs",
              file=sys.stderr)
        return 2
    cases = []
    print(f"{'series':36s} {'cases':>5s} {'hits':>4s} {'brier':>6s} {'analog':>6s}  P per case")
    for f in files:
        cs = cases_for(f)
        cases += cs
        p = np.array([c["p"] for c in cs])
        hit = np.array([c["hit"] for c in cs], float)
        an = np.array([c["analog"] for c in cs])
        print(f"{f.stem:36s} {len(cs):5d} {int(hit.sum()):4d} {np.mean((p - hit) ** 2):6.3f} "
              f"{np.mean((an - hit) ** 2):6.3f}  " + " ".join(f"{v:.2f}{'*' if h else ''}"
                                                             for v, h in zip(p, hit)))
    p = np.array([c["p"] for c in cases])
    hit = np.array([c["hit"] for c in cases], float)
    an = np.array([c["analog"] for c in cases])
    base = float(hit.mean())
    brier = float(np.mean((p - hit) ** 2))
    brier_base = float(np.mean((base - hit) ** 2))
    brier_an = float(np.mean((an - hit) ** 2))
    contradictions = sum(1 for c in cases if (c["status"] == "crosses" and c["p"] < 0.5)
                         or (c["status"] == "not within horizon" and c["p"] >= 0.5))
    print(f"\n{len(cases)} cases from {len(files)} series, {int(hit.sum())} positive "
          f"(base rate {base:.3f})")
    print(f"Brier: capplan {brier:.4f}, constant base rate {brier_base:.4f}, historical analog "
          f"{brier_an:.4f}; capplan / analog = {brier / brier_an:.3f} (target <= 0.8)")
    bins, worst = reliability(p, hit, "reliability (shipped coefficients: in-sample)")
    paths = np.array([c["p"] if c["p_paths"] is None else c["p_paths"] for c in cases])
    brier_paths = float(np.mean((paths - hit) ** 2))
    _, worst_paths = reliability(paths, hit, "reliability, paths only (the first round's P)")
    refit = _fit_coef(cases)
    print("coefficients re-fitted on all these cases: " + ", ".join(f"{v:.3f}" for v in refit)
          + "; shipped COEF: " + ", ".join(f"{v:.3f}" for v in runway_prob.COEF))
    held = {}
    for name, group in (("leave_one_series_out", lambda c: c["series"]),
                        ("leave_one_kind_out", lambda c: kind_of(c["series"]))):
        ph = held_out(cases, group)
        bh, wh = reliability(ph, hit, f"reliability, held out ({name.replace('_', ' ')})")
        bs = float(np.mean((ph - hit) ** 2))
        held[name] = {"brier": round(bs, 4), "brier_ratio_analog": round(bs / brier_an, 4),
                      "worst_bin_gap_15": round(wh, 4), "bins": bh}
        print(f"  Brier {bs:.4f}, / analog {bs / brier_an:.3f}")
    print(f"paths only: Brier {brier_paths:.4f} (/ analog {brier_paths / brier_an:.3f}), worst "
          f"bin gap {worst_paths:.3f}")
    by_factor = {str(f): round(float(np.mean([(c["p"] - c["hit"]) ** 2 for c in cases
                                              if c["factor"] == f])), 4) for f in FACTORS}
    print(f"contradictions (status vs P): {contradictions}; worst gap in bins with >= 15 cases: "
          f"{worst:.3f}; Brier by limit factor {by_factor}")
    print(f"median fit + 3 runways: {np.median([c['ms'] * len(FACTORS) for c in cases]):.1f} ms")
    print(json.dumps({"cases": len(cases), "series": len(files), "base_rate": round(base, 4),
                      "brier": round(brier, 4), "brier_base_rate": round(brier_base, 4),
                      "brier_analog": round(brier_an, 4),
                      "brier_ratio_analog": round(brier / brier_an, 4),
                      "worst_bin_gap_15": round(worst, 4), "contradictions": contradictions,
                      "bins": bins, "brier_by_factor": by_factor,
                      "brier_paths_only": round(brier_paths, 4),
                      "worst_bin_gap_15_paths_only": round(worst_paths, 4),
                      "coef_shipped": list(runway_prob.COEF),
                      "coef_refit_all": [round(float(v), 4) for v in refit],
                      "held_out": held}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
