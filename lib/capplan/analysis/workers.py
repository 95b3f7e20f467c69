"""Job worker pools: how many workers for today's peak and for N x the jobs at a target wait.

A worker-pool entry (params key ``worker_pools``, a list)::

    - name: Report jobs (queue reports)      # what the report calls it
      source: worker:reports                 # optional: one source when the store holds several
      enqueued_metric: jobs_enqueued_total   # arrivals: a counter of jobs enqueued ...
      # completed_metric: jobs_completed_total   # ... or completions plus the change in queue depth
      queue_metric: job_queue_depth          # gauge: jobs waiting (enqueued, not started)
      service_time_metric: job_duration_seconds  # histogram/summary base: <x>_sum and <x>_count
      # service_sum_metric / service_count_metric: explicit counters instead
      workers: 5                             # or workers_metric: a gauge (its latest value)
      wait_target_s: 30                      # target queue wait ...
      wait_percentile: 0.95                  # ... for this share of jobs (null: the mean wait)
      growth: 10                             # the "N x the jobs" question
      window_days: 7                         # "today": the last days of the history

What is computed (:func:`analyse_worker_pool`), from the store over the last ``window_days``:

* arrival rate ``a`` per ``grain`` bucket: ``Δenqueued/Δt``, or ``Δcompleted/Δt + Δqueue/Δt``
  (what entered = what left + what piled up); its peak is the highest bucket mean;
* mean service time ``S = Δsum / Δcount`` of the job-duration histogram (or summary);
* at the peak, M/M/c (Erlang C, :func:`capplan.models.queueing.mmc`) with ``c`` workers:
  utilisation ``a S / c``, expected queue wait and its ``wait_percentile``;
* the assumption check: M/M/c assumes Poisson arrivals and exponential job times.  Per bucket
  it predicts a mean queue length ``Lq(a_i)``; by Little's law the observed mean queue depth
  must match their average (and ``Wq = Lq / a``).  The finding says whether it does (observed
  within a factor 2, or within half a job for short queues) -- if not, the wait figures are the
  model's, and the observed queue (via Little) is the better guide today;
* the fewest workers meeting the wait target at today's peak and at ``growth`` x the peak
  (:func:`capplan.models.queueing.servers_for_wait`);
* a runway on the arrival rate: the largest rate the current workers serve within the target
  (:func:`capplan.models.queueing.headroom`) is the limit; the peak arrival series is forecast
  (:func:`capplan.models.growth.fit_forecast`) to the date it crosses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from capplan.analysis.findings import slug, Finding, fmt, fmt_date
from capplan.errors import CapplanError, ConfigError, InsufficientData

__all__ = ["WorkerPoolSpec", "parse_worker_pools", "analyse_worker_pool", "PoolEvidence",
           "littles_law_check"]

_ALLOWED = {"name", "source", "enqueued_metric", "completed_metric", "queue_metric",
            "service_time_metric", "service_sum_metric", "service_count_metric", "workers",
            "workers_metric", "wait_target_s", "wait_percentile", "growth", "window_days"}


@dataclass(frozen=True)
class WorkerPoolSpec:
    name: str
    queue_metric: str
    service_sum_metric: str
    service_count_metric: str
    wait_target_s: float
    enqueued_metric: str | None = None
    completed_metric: str | None = None
    workers: int | None = None
    workers_metric: str | None = None
    wait_percentile: float | None = 0.95
    growth: float = 10.0
    window_days: float = 7.0
    source: str | None = None



def parse_worker_pools(raw: list | None, *, path: str = "params") -> tuple[WorkerPoolSpec, ...]:
    """Check the ``worker_pools`` list; :class:`ConfigError` names the entry and key."""
    out = []
    for i, item in enumerate(raw or []):
        key = f"worker_pools[{i}]"
        if not isinstance(item, dict):
            raise ConfigError("each worker pool must be a mapping", path=path, key=key,
                              hint="see the worker_pools entry in docs/prometheus.md")
        bad = sorted(set(item) - _ALLOWED)
        if bad:
            raise ConfigError(f"unknown key(s) {bad}", path=path, key=key,
                              hint=f"allowed keys: {', '.join(sorted(_ALLOWED))}")
        for req in ("name", "queue_metric", "wait_target_s"):
            if item.get(req) in (None, ""):
                raise ConfigError(f"'{req}' is required", path=path, key=key)
        if (item.get("enqueued_metric") is None) == (item.get("completed_metric") is None):
            raise ConfigError("give exactly one of enqueued_metric (a counter of jobs enqueued) "
                              "or completed_metric (completions; the change in queue depth is "
                              "added)", path=path, key=key)
        for m in ("enqueued_metric", "completed_metric"):
            if item.get(m) is not None and not str(item[m]).endswith("_total"):
                raise ConfigError(f"{m} must be a counter named *_total, got {item[m]!r}",
                                  path=path, key=f"{key}.{m}")
        base = item.get("service_time_metric")
        ssum, scount = item.get("service_sum_metric"), item.get("service_count_metric")
        if base is not None:
            ssum, scount = ssum or f"{base}_sum", scount or f"{base}_count"
        if not ssum or not scount:
            raise ConfigError("give service_time_metric (the base of <x>_sum and <x>_count) or "
                              "service_sum_metric and service_count_metric", path=path, key=key)
        if (item.get("workers") is None) == (item.get("workers_metric") is None):
            raise ConfigError("give exactly one of workers (a number) or workers_metric",
                              path=path, key=key)
        workers = item.get("workers")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                    or workers < 1):
            raise ConfigError(f"workers must be a whole number >= 1, got {workers!r}", path=path,
                              key=f"{key}.workers")
        target = item["wait_target_s"]
        if isinstance(target, bool) or not isinstance(target, (int, float)) or target < 0:
            raise ConfigError(f"wait_target_s must be seconds >= 0, got {target!r}", path=path,
                              key=f"{key}.wait_target_s")
        pct = item.get("wait_percentile", 0.95)
        if pct is not None and not (isinstance(pct, (int, float)) and 0 < pct < 1):
            raise ConfigError(f"wait_percentile must be between 0 and 1 (or null for the mean), "
                              f"got {pct!r}", path=path, key=f"{key}.wait_percentile")
        growth = item.get("growth", 10.0)
        if not isinstance(growth, (int, float)) or growth <= 0:
            raise ConfigError(f"growth must be a positive multiple, got {growth!r}", path=path,
                              key=f"{key}.growth")
        wd = item.get("window_days", 7)
        if not isinstance(wd, (int, float)) or wd <= 0:
            raise ConfigError(f"window_days must be positive, got {wd!r}", path=path,
                              key=f"{key}.window_days")
        out.append(WorkerPoolSpec(
            name=str(item["name"]), queue_metric=str(item["queue_metric"]),
            service_sum_metric=str(ssum), service_count_metric=str(scount),
            wait_target_s=float(target), enqueued_metric=item.get("enqueued_metric"),
            completed_metric=item.get("completed_metric"), workers=workers,
            workers_metric=item.get("workers_metric"),
            wait_percentile=None if pct is None else float(pct), growth=float(growth),
            window_days=float(wd), source=item.get("source")))
    return tuple(out)


@dataclass(frozen=True)
class PoolEvidence:
    """What the store says about one pool over the window (rates per second, times in s)."""

    arrivals: pd.Series          # mean arrival rate per grain bucket, jobs/s
    queue: pd.Series             # mean queue depth per grain bucket, jobs
    service_time_s: float
    jobs_completed: float
    workers: int
    how_arrivals: str
    start: pd.Timestamp
    end: pd.Timestamp
    n_samples: int


def _arrivals(store, spec: WorkerPoolSpec, start, end, grain: str) -> tuple[pd.Series, str, int]:
    from capplan.analysis.evidence import load_series

    counter = spec.enqueued_metric or spec.completed_metric
    ev = load_series(store, counter[: -len("_total")] + "_per_second", start=start, end=end,
                     grain=grain, statistic="mean", source=spec.source)
    if spec.enqueued_metric:
        return ev.series, f"rate of {counter}", ev.n_samples
    q = store.query(spec.queue_metric, source=spec.source, start=start, end=end)
    if q.empty:
        raise InsufficientData(f"no samples of '{spec.queue_metric}'")
    depth = q.groupby("timestamp")["value"].sum().sort_index()
    last = depth.resample(grain, label="left", closed="left").last().ffill()
    dq = last.diff() / pd.Timedelta(grain).total_seconds()
    a = (ev.series + dq.reindex(ev.series.index)).dropna().clip(lower=0.0)
    return a, f"rate of {counter} + change of {spec.queue_metric}", ev.n_samples + len(q)


def _evidence(store, spec: WorkerPoolSpec, end: pd.Timestamp, grain: str) -> PoolEvidence:
    from capplan.analysis.evidence import counter_increases

    start = end - pd.Timedelta(days=spec.window_days)
    arrivals, how, n = _arrivals(store, spec, start, end, grain)
    arrivals = arrivals[arrivals.index >= start.floor(grain)]
    q = store.query(spec.queue_metric, source=spec.source, start=start, end=end)
    if q.empty:
        raise InsufficientData(f"no samples of '{spec.queue_metric}' in the window",
                               hint="collect the queue depth gauge")
    depth = q.groupby("timestamp")["value"].sum().sort_index()
    queue = depth.resample(grain, label="left", closed="left").mean().dropna()
    ssum = counter_increases(store, spec.service_sum_metric, start=start, end=end,
                             source=spec.source).total
    scount = counter_increases(store, spec.service_count_metric, start=start, end=end,
                               source=spec.source).total
    if scount <= 0:
        raise InsufficientData(f"no job completed in the window ({spec.service_count_metric} "
                               "did not increase)", needed=1, have=0, unit="jobs")
    if spec.workers is not None:
        workers = spec.workers
    else:
        wq = store.query(spec.workers_metric, source=spec.source, start=start, end=end)
        if wq.empty:
            raise InsufficientData(f"no samples of '{spec.workers_metric}'")
        workers = int(round(float(wq.groupby("timestamp")["value"].sum().sort_index().iloc[-1])))
    if arrivals.empty:
        raise InsufficientData("no arrival-rate buckets in the window")
    return PoolEvidence(arrivals, queue, ssum / scount, scount, max(1, workers), how, start, end,
                        n + len(q))


def littles_law_check(arrivals: pd.Series, queue: pd.Series, service_time_s: float,
                      workers: int) -> dict:
    """Observed mean queue depth against M/M/c's prediction, bucket by bucket (module doc)."""
    from capplan.models.queueing import mmc

    both = pd.concat([arrivals.rename("a"), queue.rename("q")], axis=1, sort=True).dropna()
    pred = []
    for a in both["a"].to_numpy():
        m = mmc(float(a), service_time_s, workers) if a > 0 else None
        pred.append(0.0 if m is None else (m.queue_mean if m.stable else math.inf))
    pred_lq = float(np.mean(pred)) if pred else math.nan
    obs_lq = float(both["q"].mean()) if len(both) else math.nan
    a_mean = float(both["a"].mean()) if len(both) else math.nan
    consistent = bool(math.isfinite(pred_lq) and (abs(obs_lq - pred_lq) <= 0.5
                      or (pred_lq > 0 and 0.5 <= obs_lq / pred_lq <= 2.0)))
    return {"observed_queue_mean": obs_lq, "predicted_queue_mean": pred_lq,
            "observed_wait_mean_s": obs_lq / a_mean if a_mean > 0 else math.nan,
            "predicted_wait_mean_s": pred_lq / a_mean if a_mean > 0 else math.nan,
            "arrival_rate_mean": a_mean, "buckets": int(len(both)), "consistent": consistent}


def analyse_worker_pool(store, spec: WorkerPoolSpec, *, end: pd.Timestamp | None,
                        grain: str = "1h", horizon_days: int = 90,
                        lookback_days: int = 90) -> list[Finding]:
    """Findings (section ``workers``) for one pool; data problems give an *insufficient data*
    finding instead of raising."""
    from capplan.models.queueing import headroom, mmc, servers_for_wait

    fid = f"workers.{slug(spec.name)}"
    if end is None:
        return [Finding(fid, "workers", spec.name, status="insufficient data",
                        detail="the store holds no samples")]
    try:
        ev = _evidence(store, spec, end, grain)
    except InsufficientData as exc:
        return [Finding(fid, "workers", spec.name, status="insufficient data",
                        detail=exc.message)]
    a_peak = float(ev.arrivals.max())
    t_peak = ev.arrivals.idxmax()
    s, c, p, target = ev.service_time_s, ev.workers, spec.wait_percentile, spec.wait_target_s
    pct_txt = "mean" if p is None else f"p{p * 100:g}"
    window = (ev.start, ev.end)
    base = dict(section="workers", n=ev.n_samples, window=window, source=spec.source)
    model = ("M/M/c: Poisson arrivals at the bucket's mean rate, exponential job times "
             f"with the observed mean {fmt(s, 'seconds')}, workers serving FCFS")
    assumption = model.replace("workers serving", f"{c} workers serving")
    q = mmc(a_peak, s, c) if a_peak > 0 else None
    util = a_peak * s / c
    wait_p = (q.wait_mean_s if p is None else q.wait_quantile(p)) if q else 0.0
    meets = bool(q is None or (q.stable and wait_p <= target))
    out = [
        Finding(f"{fid}.arrivals", label=f"{spec.name}: peak arrival rate", value=a_peak,
                unit="jobs_per_second", status="info", metric=spec.enqueued_metric
                or spec.completed_metric,
                detail=f"highest {grain} mean in the last {spec.window_days:g} days "
                       f"({fmt_date(t_peak)}); {ev.how_arrivals}",
                extra={"display": {"value": f"{a_peak * 60:.3g} jobs/min"}}, **base),
        Finding(f"{fid}.service_time", label=f"{spec.name}: mean job time", value=s,
                unit="seconds", status="info", metric=spec.service_sum_metric,
                detail=f"Δ{spec.service_sum_metric} / Δ{spec.service_count_metric} over "
                       f"{ev.jobs_completed:,.0f} completed jobs", **base),
        Finding(f"{fid}.utilisation", label=f"{spec.name}: utilisation at peak ({c} workers)",
                value=util, unit="ratio", status="meets" if util < 1 else "misses",
                detail="arrival rate x mean job time / workers", **base,
                extra={"workers": c}),
        Finding(f"{fid}.wait", label=f"{spec.name}: queue wait at peak, mean and {pct_txt}",
                value=wait_p, unit="seconds", status="meets" if meets else "misses",
                detail=(f"mean {fmt(q.wait_mean_s, 'seconds') if q else '0 s'}, {pct_txt} "
                        f"{fmt(wait_p, 'seconds')} against a {fmt(target, 'seconds')} target; "
                        + assumption) if (q is None or q.stable) else
                       f"unstable: {c} workers cannot keep up with the peak ({util:.2f} > 1)",
                extra={"model": assumption, "wait_mean_s": q.wait_mean_s if q else 0.0,
                       "p_wait": q.p_wait if q else 0.0, "target_s": target,
                       "percentile": p,
                       "display": {"value": (f"mean {fmt(q.wait_mean_s, 'seconds')}, {pct_txt} "
                                             f"{fmt(wait_p, 'seconds')}") if q and q.stable
                                   else ("unstable" if q else "no arrivals")}}, **base),
    ]
    ll = littles_law_check(ev.arrivals, ev.queue, s, c)
    out.append(Finding(
        f"{fid}.littles_law", label=f"{spec.name}: observed vs M/M/c queue (Little's law)",
        value=ll["observed_queue_mean"], unit="jobs",
        status="meets" if ll["consistent"] else "at risk", extra={**ll, "display": {
            "value": f"observed {ll['observed_queue_mean']:.3g} jobs, M/M/c "
                     f"{ll['predicted_queue_mean']:.3g} jobs"}},
        detail=(f"mean queue depth over {ll['buckets']} {grain} buckets; by Little's law the "
                f"observed mean wait is {fmt(ll['observed_wait_mean_s'], 'seconds')} against "
                f"M/M/c's {fmt(ll['predicted_wait_mean_s'], 'seconds')}: "
                + ("consistent, the model's wait figures stand" if ll["consistent"] else
                   "NOT consistent: arrivals are burstier or job times more variable than "
                   "M/M/c assumes; trust the observed queue over the model's waits")), **base))
    for mult, what in ((1.0, "today's peak"), (spec.growth, f"{spec.growth:g}x today's peak")):
        rate = a_peak * mult
        try:
            need = servers_for_wait(rate, s, target, percentile=p) if rate > 0 else 1
            detail = (f"fewest workers with {pct_txt} queue wait ≤ {fmt(target, 'seconds')} at "
                      f"{rate * 60:.3g} jobs/min ({what}); {model}")
            status = "info" if mult != 1.0 else ("meets" if need <= c else "misses")
        except ConfigError as exc:
            need, detail, status = None, exc.message, "insufficient data"
        out.append(Finding(f"{fid}.workers_needed_{'peak' if mult == 1.0 else 'growth'}",
                           label=f"{spec.name}: workers needed at {what}", value=need,
                           unit="count", status=status, detail=detail,
                           extra={"arrival_rate": rate, "multiple": mult, "service_time_s": s,
                                  "wait_target_s": target, "percentile": p}, **base))
    out.append(_runway(store, spec, ev, a_peak, s, c, grain=grain, horizon_days=horizon_days,
                       lookback_days=lookback_days, base=base, fid=fid, headroom=headroom,
                       pct_txt=pct_txt))
    return out


def _runway(store, spec, ev, a_peak, s, c, *, grain, horizon_days, lookback_days, base, fid,
            headroom, pct_txt) -> Finding:
    from capplan.models.growth import fit_forecast, time_to_limit

    label = f"{spec.name}: arrival-rate runway ({c} workers)"
    try:
        h = headroom(max(a_peak, 1e-12), s, c, wait_target_s=spec.wait_target_s,
                     percentile=spec.wait_percentile)
    except CapplanError as exc:
        return Finding(f"{fid}.runway", label=label, status="insufficient data",
                       detail=exc.message, **base)
    limit = float(h["max_arrival_rate"])
    start = ev.end - pd.Timedelta(days=lookback_days)
    try:
        y, _how, _n = _arrivals(store, spec, start, ev.end, grain)
        horizon = int(pd.Timedelta(days=horizon_days) / pd.Timedelta(grain))
        fc = fit_forecast(y, horizon=horizon, grain=grain, bounds=(0.0, None))
        rw = time_to_limit(fc, limit)
    except CapplanError as exc:
        return Finding(f"{fid}.runway", label=label, value=a_peak, unit="jobs_per_second",
                       status="insufficient data", detail=exc.message,
                       extra={"limit": limit}, **base)
    cross = (f"{fmt_date(rw.crossing)}" if rw.crossing is not None else rw.status)
    return Finding(
        f"{fid}.runway", label=label, value=a_peak, unit="jobs_per_second", status=rw.status,
        detail=(f"the largest arrival rate {c} workers serve with {pct_txt} wait ≤ "
                f"{fmt(spec.wait_target_s, 'seconds')} is {limit * 60:.3g} jobs/min "
                f"({h['growth'] * 100:.0f}% above today's peak); forecast ({fc.model}) "
                f"crossing: {cross}; P(cross within {horizon_days} days) "
                f"{rw.p_cross_within_horizon * 100:.0f}%"),
        extra={"limit": limit, "growth_headroom": h["growth"], "crossing": rw.crossing,
               "crossing_lo": rw.crossing_lo, "crossing_hi": rw.crossing_hi,
               "p_cross_within_horizon": rw.p_cross_within_horizon, "model": fc.model,
               "display": {"value": f"limit {limit * 60:.3g} jobs/min; crossing {cross}"}},
        **base)
