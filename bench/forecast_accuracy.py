"""Forecast accuracy on the NAB server-metric series (issue 5, "Accuracy and speed").

For each ``*.csv`` under the data directory (default ``../shared/data/nab``): resample to hourly
means, hold out the last 20 %, forecast the held-out part in one shot, and score

* MASE = MAE(held-out) / in-sample MAE of the seasonal-naive (m = 24 h) one-step forecast
  (Hyndman & Koehler 2006, "Another look at measures of forecast accuracy");
* coverage of the 80 % and 95 % intervals (share of held-out points inside);
* the model's own leave-one-fold-out backtest coverage (``bt80``/``bt95``) reported beside it.

beside seasonal naive (repeat the last 24 h) and statsmodels ETS(A,Ad,A) (m = 24) fitted in the same
run.  Overall figures: geometric mean of MASE over series; coverage pooled over all held-out
points, as the issue defines it (the JSON ``coverage80``/``coverage95``; nyc_taxi's 1,032
held-out hours are 64 % of all points, so it dominates), and as the mean over series
(``coverage80_mean_of_series``/``coverage95_mean_of_series``, each series weighing equally).
Usage: ``python bench/forecast_accuracy.py [DATA_DIR]``.  The last line is one JSON object.
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


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[1]
    data_dir = Path(argv[1]) if len(argv) > 1 else root.parent / "shared" / "data" / "nab"
    files = sorted(data_dir.glob("*.csv"))
    if not files:
        print(f"no CSV files in {data_dir}", file=sys.stderr)
        return 2
    rows = []
    per80: list[float] = []
    per95: list[float] = []
    inside80 = inside95 = total = 0
    print(f"{'series':42s} {'n':>5s} {'h':>5s} {'snaive':>7s} {'ets':>7s} {'capplan':>7s} "
          f"{'cov80':>6s} {'cov95':>6s} {'bt80':>5s} {'bt95':>5s} {'ms':>6s}  model")
    for f in files:
        y = read_series_csv(f).resample("1h").mean()
        n = len(y)
        n_test = int(round(0.2 * n))
        train, test = y.iloc[: n - n_test], y.iloc[n - n_test:]
        tr, te = train.to_numpy(float), test.to_numpy(float)
        scale = _mase_scale(tr)
        ok = ~np.isnan(te)
        t0 = time.perf_counter()
        fc = fit_forecast(train, horizon=n_test, grain="1h")
        ms = 1000 * (time.perf_counter() - t0)
        fr = fc.frame
        mase = {
            "snaive": np.mean(np.abs(_snaive(tr, n_test) - te)[ok]) / scale,
            "ets": np.mean(np.abs(_ets(tr, n_test) - te)[ok]) / scale,
            "capplan": np.mean(np.abs(fr["mean"].to_numpy() - te)[ok]) / scale,
        }
        in80 = ((te >= fr["lo80"].to_numpy()) & (te <= fr["hi80"].to_numpy()))[ok]
        in95 = ((te >= fr["lo95"].to_numpy()) & (te <= fr["hi95"].to_numpy()))[ok]
        inside80 += int(in80.sum())
        inside95 += int(in95.sum())
        total += int(ok.sum())
        rows.append(mase)
        per80.append(float(in80.mean()))
        per95.append(float(in95.mean()))
        print(f"{f.stem:42s} {len(tr):5d} {n_test:5d} {mase['snaive']:7.3f} {mase['ets']:7.3f} "
              f"{mase['capplan']:7.3f} {in80.mean():6.3f} {in95.mean():6.3f} "
              f"{fc.backtest.coverage80:5.2f} {fc.backtest.coverage95:5.2f} {ms:6.1f}  {fc.model}")
    geo = {k: float(np.exp(np.mean([np.log(r[k]) for r in rows]))) for k in rows[0]}
    cov80, cov95 = float(np.mean(per80)), float(np.mean(per95))
    pool80, pool95 = inside80 / total, inside95 / total
    print(f"{'geometric mean MASE | coverage mean over series':42s} {'':5s} {'':5s} "
          f"{geo['snaive']:7.3f} {geo['ets']:7.3f} {geo['capplan']:7.3f} {cov80:6.3f} {cov95:6.3f}")
    print(f"{'coverage pooled over all held-out points':42s} {'':5s} {total:5d} {'':7s} {'':7s} "
          f"{'':7s} {pool80:6.3f} {pool95:6.3f}")
    summary = {
        "geo_mase_ratio_snaive": round(geo["capplan"] / geo["snaive"], 4),
        "geo_mase_ratio_ets": round(geo["capplan"] / geo["ets"], 4),
        "coverage80": round(pool80, 4),
        "coverage95": round(pool95, 4),
        "coverage80_mean_of_series": round(cov80, 4),
        "coverage95_mean_of_series": round(cov95, 4),
        "geo_mase": {k: round(v, 4) for k, v in geo.items()},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
