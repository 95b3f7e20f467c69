"""Forecast accuracy and honest coverage on the dev and NAB series (issues 5 and 12).

For each ``*.csv`` under the data directories (default ``../shared/data/dev`` (23 series) and
``../shared/data/nab`` (6)): resample to hourly means; at cut points 60, 70 and 80 % of the series
fit on the history before the cut and forecast ``H = min(168 h, rest)`` steps; score

* MASE = MAE(held-out) / in-sample MAE of the seasonal-naive (m = 24 h) one-step forecast
  (Hyndman & Koehler 2006, "Another look at measures of forecast accuracy");
* realized coverage of the 80 % and 95 % intervals (share of held-out points inside) beside the
  coverage the model *reported* from its own backtest (``bt80``/``bt95``);

beside seasonal naive (repeat the last 24 h) and statsmodels ETS(A,Ad,A) (m = 24), cached per
(file, cut) in ``/tmp/capplan_bench_ets.json`` because they take most of the run.  Overall:
geometric mean of MASE over all (series, cut) cases; coverage as the mean over series (each
series' mean over its cuts, every series weighing equally), pooled over all held-out points, and
``|reported - realized|`` (mean over series).  Usage::

    python bench/forecast_accuracy.py [DATA_DIR ...]

The last line is one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from capplan.models.growth import fit_forecast
from capplan.collect.files import read_series_csv

M = 24


def _mase_scale(train: np.ndarray) -> float:
    d = np.abs(train[M:] - train[:-M])
    return float(np.nanmean(d))


def _snaive(train: np.ndarray, h: int) -> np.ndarray:
    last = train[-M:]
    return np.array([last[i % M] for i in range(h)])


def _ets(train: np.ndarray, h: int) -> np.ndarray:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    x = pd.Series(train).interpolate(limit_direction="both").to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ExponentialSmoothing(x, trend="add", damped_trend=True, seasonal="add",
                                     seasonal_periods=M, initialization_method="estimated")
        return np.asarray(model.fit().forecast(h))


CUTS = (0.6, 0.7, 0.8)
H_MAX = 168
ETS_CACHE = Path("/tmp/capplan_bench_ets.json")


def _cached_ets(cache: dict, key: str, tr: np.ndarray, h: int) -> np.ndarray:
    if key not in cache or len(cache[key]) != h:
        cache[key] = [float(v) for v in _ets(tr, h)]
    return np.array(cache[key])


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
    cache = json.loads(ETS_CACHE.read_text()) if ETS_CACHE.exists() else {}
    rows, series, spread = [], [], []
    inside80 = inside95 = total = 0
    print(f"{'series':38s} {'cut':>4s} {'h':>4s} {'snaive':>7s} {'ets':>7s} {'capplan':>7s} "
          f"{'cov80':>6s} {'cov95':>6s} {'bt80':>5s} {'bt95':>5s} {'ms':>6s}  model")
    for f in files:
        y = read_series_csv(f).resample("1h").mean()
        n = len(y)
        per = []
        for cut in CUTS:
            c = int(round(cut * n))
            h = min(H_MAX, n - c)
            train, test = y.iloc[:c], y.iloc[c:c + h]
            tr, te = train.to_numpy(float), test.to_numpy(float)
            scale = _mase_scale(tr)
            ok = ~np.isnan(te)
            t0 = time.perf_counter()
            fc = fit_forecast(train, horizon=h, grain="1h")
            ms = 1000 * (time.perf_counter() - t0)
            fr = fc.frame
            ets = _cached_ets(cache, f"{f.name}@{cut}", tr, h)
            mase = {
                "snaive": np.mean(np.abs(_snaive(tr, h) - te)[ok]) / scale,
                "ets": np.mean(np.abs(ets - te)[ok]) / scale,
                "capplan": np.mean(np.abs(fr["mean"].to_numpy() - te)[ok]) / scale,
            }
            in80 = ((te >= fr["lo80"].to_numpy()) & (te <= fr["hi80"].to_numpy()))[ok]
            in95 = ((te >= fr["lo95"].to_numpy()) & (te <= fr["hi95"].to_numpy()))[ok]
            inside80 += int(in80.sum())
            inside95 += int(in95.sum())
            total += int(ok.sum())
            rows.append(mase)
            bt = fc.backtest
            per.append((in80.mean(), in95.mean(), bt.coverage80, bt.coverage95))
            print(f"{f.stem[:38]:38s} {cut:4.1f} {h:4d} {mase['snaive']:7.3f} {mase['ets']:7.3f} "
                  f"{mase['capplan']:7.3f} {in80.mean():6.3f} {in95.mean():6.3f} "
                  f"{bt.coverage80:5.2f} {bt.coverage95:5.2f} {ms:6.1f}  {fc.model[:90]}")
        series.append(np.nanmean(np.array(per, float), axis=0))
        spread.append(np.nanstd(np.array(per, float)[:, 1], ddof=1) / np.sqrt(len(per)))
    ETS_CACHE.write_text(json.dumps(cache))
    geo = {k: float(np.exp(np.mean([np.log(r[k]) for r in rows]))) for k in rows[0]}
    S = np.array(series)
    cov80, cov95, rep80, rep95 = (float(v) for v in S.mean(axis=0))
    gap80 = float(np.mean(np.abs(S[:, 2] - S[:, 0])))
    gap95 = float(np.mean(np.abs(S[:, 3] - S[:, 1])))
    pool80, pool95 = inside80 / total, inside95 / total
    better = min(geo["snaive"], geo["ets"])
    print(f"\n{len(rows)} cases from {len(files)} series, cut points {CUTS}, horizon min({H_MAX}, rest)")
    print(f"geometric mean MASE: seasonal naive {geo['snaive']:.3f}, ETS(A,Ad,A) {geo['ets']:.3f}, "
          f"capplan {geo['capplan']:.3f}; capplan / better baseline = {geo['capplan'] / better:.3f} "
          "(target <= 0.85)")
    print(f"coverage, mean over series: 80 % realized {cov80:.3f} (reported {rep80:.3f}), 95 % "
          f"realized {cov95:.3f} (reported {rep95:.3f}); targets 80 % in [0.75, 0.90], 95 % in "
          "[0.90, 0.98]")
    print(f"|reported - realized| (mean over series, each over its cuts): 80 % {gap80:.3f}, 95 % "
          f"{gap95:.3f}; reported - realized of the means: 95 % {rep95 - cov95:+.3f} (target |.| <= 0.05)")
    # How close can ANY reported figure come to one series' realized coverage?  That realized
    # figure is a mean over its few cuts of 168 autocorrelated hours: its standard error (the
    # spread over cuts / sqrt(cuts)) is noise that no model can remove, and a perfectly calibrated
    # one would still miss by about 0.8 of it on average (E|N(0, se)| = 0.8 se).
    floor95 = float(0.8 * np.nanmean(spread))
    corr95 = float(np.corrcoef(S[:, 3], S[:, 1])[0, 1])
    mad95 = float(np.mean(np.abs(S[:, 1] - cov95)))
    print(f"coverage pooled over all {total} held-out points: 80 % {pool80:.3f}, 95 % {pool95:.3f}")
    print(f"noise floor of the per-series 95 % gap: each series' realized coverage has a standard "
          f"error of {np.nanmean(spread):.3f} (spread over its cuts); a perfectly calibrated "
          f"figure would still be off by ~{floor95:.3f} per series on average")
    print(f"per series, reported 95 % backtest coverage vs realized: correlation {corr95:+.2f}; "
          f"realized coverage scatters {mad95:.3f} (mean |deviation|) around its mean over series, "
          "so even the right mean reported for every series would miss by that much")
    summary = {
        "cases": len(rows), "series": len(files),
        "geo_mase_ratio_snaive": round(geo["capplan"] / geo["snaive"], 4),
        "geo_mase_ratio_ets": round(geo["capplan"] / geo["ets"], 4),
        "geo_mase_ratio_better": round(geo["capplan"] / better, 4),
        "coverage80_mean_of_series": round(cov80, 4),
        "coverage95_mean_of_series": round(cov95, 4),
        "reported80_mean_of_series": round(rep80, 4),
        "reported95_mean_of_series": round(rep95, 4),
        "reported_minus_realized95": round(rep95 - cov95, 4),
        "abs_gap95_mean_of_series": round(gap95, 4),
        "abs_gap80_mean_of_series": round(gap80, 4),
        "abs_gap95_noise_floor": round(floor95, 4),
        "corr_reported_realized95": round(corr95, 4),
        "realized95_mad_between_series": round(mad95, 4),
        "coverage80_pooled": round(pool80, 4),
        "coverage95_pooled": round(pool95, 4),
        "geo_mase": {k: round(v, 4) for k, v in geo.items()},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
