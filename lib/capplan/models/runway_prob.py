"""Calibrated P(cross within horizon) from the joint sample paths and the series' own history
(issue 12, second round).

The share of the joint sample paths (:meth:`Forecast.sample_paths`) that reach a limit is a
probability *under the model*; on the 29 dev/NAB series it barely beat a constant (Brier 0.199 vs
0.200): the paths are too sure near 0 (P < 0.1 on 102 cases of which 19 % crossed) and too eager
in the middle (P 0.5-0.7: 35 % crossed).  Real server series change regime in ways no fitted
model foresees.  So the probability that is reported combines three readings of the same case,
each a share in [0, 1]:

* ``p_paths``: share of the joint sample paths that reach the limit within the horizon;
* ``p_wide``: the same share for the paths' departures from the mean forecast widened ``WIDEN``
  (4) times -- how far the limit is beyond what the model thinks possible (0 only when the limit
  is out of reach even then, e.g. 100x the history);
* ``p_analog``: the *historical analog* -- the share of the windows of the same length in the
  last ``ANALOG_DAYS`` (56) days of history (one starting every step) whose maximum reached the
  limit (Murphy's climatology, made local: how often did this series do it before);

in a logistic (Platt 1999-style) stack on features chosen so that the certain cases stay certain:

    logit P = c0 + c1 * -ln(1 - p_paths) + c2 * ln(p_wide) + c3 * p_analog,

the path shares clipped to [EPS, 1 - EPS] (EPS = 1 / 1,000 paths).  ``-ln(1 - p)`` lets
all-paths-cross cases reach P ~ 1; ``ln p_wide`` takes P to 0 for limits nothing reaches; the
analog lifts cases the model rules out but the series' past says happen (linear, not log: a
limit above all of the history -- growth into new territory -- is not pushed to 0 by it).  The
coefficients ``COEF`` were fitted by :func:`fit_coef` (Brier loss of the probability *as
reported*, the two rules below included, with c1..c3 >= 0 so that P is monotone in every
reading) on the 261 cases of ``bench/runway_calibration.py`` (23 dev + 6 NAB series); that bench
also re-fits them leaving one series out (and one source kind out) and reports the held-out
Brier and reliability, which are the numbers to trust for series the model has never seen.  (The
first fit minimised the loss of the bare logistic and applied the rules afterwards, so the
coefficients were tuned for a probability that was never reported; fitted on what is reported,
c1 goes to its bound 0: below ``TRUST`` the path share adds nothing that ``p_wide`` does not.)

One exception: a path share >= ``TRUST`` (0.9) is never lowered by the stack.  Below 0.9 the path
share carried almost no information on the dev series (observed frequency 0.13-0.50 in every
0.1-wide bin from 0 to 0.9), but all 13 cases with a share >= 0.9 crossed; the logistic form
cannot follow that step and would turn a steady trend's 0.93 into 0.5.  And a significant upward
trend with t >= ``CLEAN_TREND_T`` (20) keeps at least the path share: no dev case had |t| above
10.8, so the stack has never seen such a trend and has no evidence to shrink it (a clean linear
growth toward a limit would otherwise read 'not within horizon').

``first-passage times`` keep coming from the joint paths: the crossing date distribution is the
paths' first-passage distribution *given* a crossing, scaled to the calibrated P (so the median
crossing exists exactly when P >= 0.5, and no status contradicts the probability).
"""

from __future__ import annotations

import numpy as np

__all__ = ["COEF", "EPS", "TRUST", "CLEAN_TREND_T", "WIDEN", "ANALOG_DAYS", "Reading", "readings",
           "calibrated", "fit_coef", "analog_share", "features", "widened"]

COEF = (-0.901, 0.0, 2.133, 1.299)   # c0..c3, fitted on the dev + NAB cases (see above)
EPS = 1e-3
TRUST = 0.9     # a path share at or above this is reported as is (or higher)
CLEAN_TREND_T = 20.0   # trend t statistic beyond every dev case (max 10.8): paths kept
WIDEN = 4.0
ANALOG_DAYS = 56


def analog_share(hist: np.ndarray, limit: float, h: int, window: int) -> tuple[float, np.ndarray]:
    """(share of length-``h`` windows in the last ``window`` values of ``hist`` whose max reaches
    ``limit``, first-passage step of each window (inf = never)).  With no more than ``h`` values
    there is one window (the whole tail)."""
    x = np.asarray(hist, float)[-window:]
    x = np.where(np.isnan(x), -np.inf, x)
    hit = x >= limit
    if x.size == 0:
        return 0.0, np.full(1, np.inf)
    if x.size <= h:
        t = float(np.argmax(hit)) if hit.any() else np.inf
        return float(hit.any()), np.array([t])
    # next hit at or after each position (inf = none), by a reverse running minimum
    pos = np.where(hit, np.arange(x.size, dtype=float), np.inf)
    nxt = np.minimum.accumulate(pos[::-1])[::-1]
    starts = np.arange(x.size - h + 1)
    t = nxt[starts] - starts
    t[t >= h] = np.inf
    return float(np.isfinite(t).mean()), t


def features(p_paths, p_wide, p_analog) -> np.ndarray:
    """The stack's features [-ln(1 - p_paths), ln p_wide, p_analog] (path shares clipped to
    [EPS, 1 - EPS]); arrays give one row per case."""
    def c(v):
        return np.clip(np.asarray(v, float), EPS, 1 - EPS)
    return np.stack([-np.log(1 - c(p_paths)), np.log(c(p_wide)),
                     np.asarray(p_analog, float)], axis=-1)


def calibrated(p_paths, p_wide, p_analog, coef=COEF, trust: float = TRUST,
               clean_trend=False, digits: int | None = 3):
    """The reported P(cross within horizon), rounded to the paths' resolution (``digits`` 3:
    1e-3; None: unrounded, for fitting): the logistic stack, except that a path share >=
    ``trust`` -- or any path share when ``clean_trend`` (a significant upward trend with t >=
    CLEAN_TREND_T) -- is never lowered (arrays give arrays)."""
    z = coef[0] + features(p_paths, p_wide, p_analog) @ np.asarray(coef[1:], float)
    pp = np.asarray(p_paths, float)
    keep = (pp >= trust) | np.asarray(clean_trend, bool)
    out = np.where(keep, np.maximum(1 / (1 + np.exp(-z)), pp), 1 / (1 + np.exp(-z)))
    if digits is not None:
        out = np.round(out, digits)
    return float(out) if out.ndim == 0 else out


def fit_coef(p_paths, p_wide, p_analog, hit, clean_trend=False, start=COEF) -> np.ndarray:
    """Coefficients c0..c3 minimising the Brier score of :func:`calibrated` -- the probability
    as reported, with the ``TRUST`` and clean-trend rules applied -- with c1..c3 >= 0, so that
    P never falls when a reading rises (Nelder-Mead on the clipped coefficients)."""
    from scipy.optimize import minimize

    y = np.asarray(hit, float)

    def clip(b):
        return np.concatenate([b[:1], np.maximum(b[1:], 0.0)])

    def loss(b):
        p = calibrated(p_paths, p_wide, p_analog, coef=clip(b), clean_trend=clean_trend,
                       digits=None)
        return float(np.mean((p - y) ** 2))
    b = minimize(loss, np.asarray(start, float), method="Nelder-Mead",
                 options={"maxiter": 4000, "xatol": 1e-5, "fatol": 1e-10}).x
    return clip(b)


class Reading:
    """The three shares behind one probability and the first-passage steps of the paths."""

    __slots__ = ("p_paths", "p_wide", "p_analog", "t_paths", "t_wide", "t_analog")

    def __init__(self, p_paths, p_wide, p_analog, t_paths, t_wide, t_analog):
        self.p_paths, self.p_wide, self.p_analog = p_paths, p_wide, p_analog
        self.t_paths, self.t_wide, self.t_analog = t_paths, t_wide, t_analog


def _first(hit: np.ndarray) -> np.ndarray:
    crossed = hit.any(axis=1)
    return np.where(crossed, np.argmax(hit, axis=1), np.inf).astype(float)


def widened(paths: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The paths' departures from ``mean`` widened WIDEN times (clip to bounds afterwards): a new
    array, ``mean + WIDEN * (paths - mean)`` computed in place in it (one (n, H) allocation)."""
    m = mean[None, :]
    out = paths - m
    out *= WIDEN
    out += m
    return out


def readings(paths: np.ndarray, wide: np.ndarray, hist: np.ndarray, limit: float,
             analog_steps: int) -> Reading:
    """The three shares for ``limit`` (``paths``: n x H joint paths, ``wide`` their
    :func:`widened` copy, ``hist`` the history at the forecast's grain)."""
    t_p = _first(paths >= limit)
    t_w = _first(wide >= limit)
    a, t_a = analog_share(hist, limit, paths.shape[1], analog_steps)
    return Reading(float(np.isfinite(t_p).mean()), float(np.isfinite(t_w).mean()), a,
                   t_p, t_w, t_a)
