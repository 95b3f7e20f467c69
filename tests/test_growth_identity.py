"""The growth fit and its runway give the same numbers as the reference outputs (issue 16 item 3).

``fixtures/growth_golden.npz`` holds ~50 input series (the fleet bench's synthetic series with
steps and gaps, the dev and NAB real series, hourly, some with bounds (0, None) or (0, 100), some at
2 h, 30 min and 1 day grains, a constant one, one with a long gap, one too short) and what :func:`capplan.models.growth.fit_forecast` and
:func:`capplan.models.growth.time_to_limit` returned for them when the fixture was written: the
full mean and bands, members, scale, interval quantiles, backtest coverage and MASE, the model
string, changes, trend, sample paths for a seed, and runway status / P / crossing dates for two
limits.  Every refit must agree to 1e-9 (relative and absolute): speed work on the model must not
change a number.

Regenerate (only for an intended change of the model, never to make a speed change pass)::

    .venv/bin/python tests/test_growth_identity.py --write [DATA_ROOT]

(DATA_ROOT defaults to the developers' shared folder ``../shared/data`` beside the checkout.)  The
fixture was written by the code of commit efad512 (before the fleet speed work of issue 16 item 3),
and rewritten once after it, for an intended change: the P(cross) coefficients re-fitted on the
loss of the probability as reported (runway_prob.fit_coef); only runway P and dates moved.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capplan.errors import CapplanError
from capplan.models.growth import fit_forecast, time_to_limit

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "growth_golden.npz"
TOL = 1e-9
N_SYNTH = 90 * 24


# --- inputs (only used to write the fixture; the test reads the stored inputs) -----------------

def _synthetic(i: int, seed: int = 20261123) -> np.ndarray:
    """bench/fleet_speed.py's make_series(i) (copied so that the fixture does not depend on it)."""
    from scipy.signal import lfilter
    rng = np.random.default_rng([seed, i])
    t = np.arange(N_SYNTH)
    level = rng.uniform(50, 500)
    trend = rng.normal(0, 0.15) * level / N_SYNTH
    day = level * rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * (t - rng.uniform(0, 24)) / 24)
    week = np.where((t // 24) % 7 >= 5, -level * rng.uniform(0, 0.2), 0.0)
    noise = lfilter([1.0], [1.0, -0.7], rng.normal(0, level * 0.02, N_SYNTH))
    y = level + trend * t + day + week + noise
    if i % 3 == 0:
        y[rng.integers(N_SYNTH // 3, N_SYNTH - 200):] += level * rng.uniform(-0.1, 0.2)
    if i % 10 == 0:
        g = rng.integers(100, N_SYNTH - 100)
        y[g:g + 12] = np.nan
    return np.maximum(y, 0)


def _cases(data_root: Path) -> list[dict]:
    """(name, values, start, freq, grain, horizon, bounds) of every case."""
    from capplan.collect.files import read_series_csv
    out = []
    start = pd.Timestamp("2026-08-03", tz="UTC")

    def add(name, v, st, freq="1h", grain="1h", horizon=168, bounds=(None, None)):
        out.append(dict(name=name, values=np.asarray(v, float), start=st, freq=freq,
                        grain=grain, horizon=horizon, bounds=bounds))

    for i in (0, 1, 2, 3, 5, 9, 10, 20, 30, 33):
        add(f"synth{i}", _synthetic(i), start, bounds=(0, None))
    for i in (4, 6):
        add(f"synth{i}-unbounded", _synthetic(i), start)
    y7 = _synthetic(7)
    add("synth7-pct", 90 * y7 / np.nanmax(y7), start, bounds=(0, 100))
    add("synth8-h24", _synthetic(8), start, horizon=24, bounds=(0, None))
    add("synth11-h500", _synthetic(11), start, horizon=500, bounds=(0, None))
    add("synth12-2h", _synthetic(12), start, grain="2h", horizon=84, bounds=(0, None))
    add("synth13-short", _synthetic(13)[:300], start, bounds=(0, None))
    add("synth14-tiny", _synthetic(14)[:60], start, horizon=24)
    add("synth15-too-short", _synthetic(15)[:20], start, horizon=24)
    add("synth16-daily-grain", _synthetic(16), start, grain="1D", horizon=14, bounds=(0, None))
    add("synth17-15min-at-30min", _synthetic(17), start, freq="15min", grain="30min", horizon=96)
    add("synth18-constant", np.full(500, 7.0), start, horizon=48, bounds=(0, 10))
    y19 = _synthetic(19)
    y19[300:700] = np.nan
    add("synth19-long-gap", y19, start, horizon=168, bounds=(0, None))
    files = sorted(f for d in ("dev", "nab") for f in (data_root / d).glob("*.csv")
                   if f.name != "SOURCES.csv")
    for j, f in enumerate(files):
        y = read_series_csv(f).resample("1h").mean().iloc[-2500:]
        if "cpu" in f.stem:
            bounds = (0, 100)
        elif j % 2:
            bounds = (0, None)
        else:
            bounds = (None, None)
        h = int(min(168, max(12, len(y) // 4)))
        add(f.stem, y.to_numpy(float), y.index[0], horizon=h, bounds=bounds)
    return out


def _series(c: dict) -> pd.Series:
    idx = pd.date_range(c["start"], periods=len(c["values"]), freq=c["freq"], tz="UTC")
    return pd.Series(c["values"], index=idx, name=c["name"])


def _ts(t) -> float:
    """Hours since the epoch (exact for whole hours), NaN for None."""
    return float("nan") if t is None else pd.Timestamp(t).value / 3.6e12


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def outputs(c: dict) -> dict:
    """Every output that must not change, as arrays (strings as 0-d unicode arrays)."""
    y = _series(c)
    try:
        fc = fit_forecast(y, horizon=c["horizon"], grain=c["grain"], bounds=c["bounds"])
    except CapplanError as exc:
        return {"error": np.array(type(exc).__name__)}
    fr = fc.frame
    bt = fc.backtest
    o = {
        "model": np.array(fc.model), "season": np.array(fc.season),
        "warnings": np.array("\n".join(fc.warnings)),
        "frame": fr[["mean", "lo80", "hi80", "lo95", "hi95"]].to_numpy(float),
        "frame_t0": np.array(fr.index[0].value, dtype=np.int64),
        "members": np.asarray(fc.members, float), "scale": np.asarray(fc.scale, float),
        "knots": np.asarray(fc.path_knots[1], float),
        "backtest": np.array([bt.mase, bt.coverage80, bt.coverage95, bt.folds, bt.horizon], float),
        "trend": np.array([fc.trend_per_step, fc.trend_t, float(fc.trend_up), fc.trend_blocks,
                           fc.block, fc.n_obs], float),
        "changes": np.array([[c.index, c.kind == "level", c.size] for c in fc.changes],
                            float).reshape(-1, 3),
        "noise": (np.zeros(0) if fc.noise is None else np.asarray(fc.noise, float)[::3]),
        "paths": fc.sample_paths(48, seed=3)[:, ::12],
        "runway_end": fc.runway_paths[::5, -1],
        "runway_mean": fc.runway_paths.mean(axis=0),
    }
    hist = y.to_numpy(float)
    for k, limit in enumerate((float(np.nanmax(hist)) * 1.15,
                               float(np.nanmax(hist[-14 * 24:])))):
        rw = time_to_limit(fc, limit)
        o[f"runway{k}_status"] = np.array(rw.status + "|" + "\n".join(rw.warnings))
        o[f"runway{k}"] = np.array([_num(rw.p_cross_within_horizon), _num(rw.p_paths),
                                    _num(rw.p_wide), _num(rw.p_analog), _ts(rw.crossing),
                                    _ts(rw.crossing_lo), _ts(rw.crossing_hi)])
    return o


def write(data_root: Path) -> None:
    arrays = {}
    for j, c in enumerate(_cases(data_root)):
        p = f"c{j:02d}/"
        arrays[p + "name"] = np.array(c["name"])
        arrays[p + "values"] = c["values"]
        arrays[p + "start"] = np.array(c["start"].value, dtype=np.int64)
        arrays[p + "spec"] = np.array(repr((c["freq"], c["grain"], c["horizon"], c["bounds"])))
        for k, v in outputs(c).items():
            arrays[p + k] = v
    np.savez_compressed(GOLDEN, **arrays)
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size / 1e6:.2f} MB, "
          f"{len({k.split('/')[0] for k in arrays})} cases)")


# --- the test -----------------------------------------------------------------------------------

def _load_cases() -> list[tuple[dict, dict]]:
    z = np.load(GOLDEN)
    ids = sorted({k.split("/")[0] for k in z.files})
    out = []
    for cid in ids:
        g = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith(cid + "/")}
        freq, grain, horizon, bounds = eval(str(g.pop("spec")))   # our own repr of a tuple
        c = dict(name=str(g.pop("name")), values=g.pop("values"),
                 start=pd.Timestamp(int(g.pop("start")), tz="UTC"), freq=freq, grain=grain,
                 horizon=horizon, bounds=bounds)
        out.append((c, g))
    return out


CASES = _load_cases() if GOLDEN.exists() else []


def test_fixture_is_present_and_varied():
    assert GOLDEN.exists(), f"{GOLDEN} missing: write it with {__file__} --write"
    assert len(CASES) >= 35
    assert GOLDEN.stat().st_size < 2e6
    kinds = {str(g.get("season")) for _, g in CASES}
    assert {"day", "week"} <= kinds
    assert any("error" in g for _, g in CASES)
    assert any(b == (0, 100) for b in (c["bounds"] for c, _ in CASES))


@pytest.mark.parametrize("case,golden", CASES, ids=[c["name"] for c, _ in CASES])
def test_refit_matches_golden(case, golden):
    got = outputs(case)
    assert set(got) == set(golden), (sorted(got), sorted(golden))
    bad = []
    for k, want in golden.items():
        have = got[k]
        if want.dtype.kind in "US":
            if str(have) != str(want):
                bad.append(f"{k}: {str(have)[:300]!r} != {str(want)[:300]!r}")
        elif have.shape != want.shape:
            bad.append(f"{k}: shape {have.shape} != {want.shape}")
        elif not np.allclose(have, want, rtol=TOL, atol=TOL, equal_nan=True):
            d = np.abs(have - want)
            bad.append(f"{k}: max |diff| {np.nanmax(d):.3g}")
    assert not bad, f"{case['name']}: " + "; ".join(bad)


if __name__ == "__main__":
    if "--write" in sys.argv:
        rest = [a for a in sys.argv[1:] if a != "--write"]
        root = Path(rest[0]) if rest else Path(__file__).resolve().parents[2] / "shared" / "data"
        write(root)
    else:
        print(__doc__)
