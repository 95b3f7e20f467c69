"""Queueing laws and models for capacity questions: Little's law, utilisation, M/M/1, M/M/c
(Erlang C), percentile approximations, headroom, instances and workers needed.

Units: rates are per second and times in seconds unless a name says otherwise (``jobs_per_min``);
any consistent pair of units works for the pure laws.

Core model: a load-dependent birth-death queue ("flow-equivalent server", Lazowska et al.,
*Quantitative System Performance*, 1984, ch. 8; Gunther, *Guerrilla Capacity Planning*, ch. 6).
With ``k`` requests in service (at most ``c`` slots) the instance completes requests at total
rate ``X(k)``; further arrivals wait FCFS.  ``X(k) = k/S`` is exactly M/M/c (Erlang C); ``X(k)``
from a fitted USL is how :func:`instances_needed` combines measured per-instance scalability with
queueing.  Given Poisson arrivals at rate ``a``::

    p(n) ~ prod_{k<=n} a / X(min(k, c)),  P(wait) = P(n >= c),  Wq | wait ~ Exp(X(c) - a)

Means follow from Little's law and are exact for the model.  Response-time percentiles: the wait
part is exact; service is taken as exponential with the per-request rate ``X(k)/k`` at the
concurrency ``k`` the request joins (exact for M/M/c, where ``P(T > t)`` is the classic
mixture; an approximation for a USL server).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from capplan.errors import ConfigError, InsufficientData

__all__ = [
    "QueueMetrics", "InstancePlan", "utilization", "littles_law", "erlang_b", "erlang_c",
    "mm1", "mmc", "load_dependent", "lq_gunther", "lq_sakasegawa", "square_root_staffing",
    "servers_for_wait", "headroom", "worker_pool", "workers_needed", "instances_needed",
    "mva_closed",
]


def _pos(name: str, v, *, allow_zero: bool = False) -> float:
    v = float(v)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ConfigError(f"must be a {'non-negative' if allow_zero else 'positive'} finite "
                          f"number, got {v!r}", key=name)
    return v


def _num(v):
    return None if v is None or not math.isfinite(float(v)) else float(v)


# -- laws ------------------------------------------------------------------------------------------

def utilization(arrival_rate: float, service_time_s: float, servers: int = 1) -> float:
    """Utilisation law ``U = X S / m`` (per server; >= 1 means saturated)."""
    return _pos("arrival_rate", arrival_rate, allow_zero=True) * _pos("service_time_s", service_time_s) / int(servers)


def littles_law(*, concurrency: float | None = None, throughput: float | None = None,
                response_time_s: float | None = None, think_time_s: float = 0.0) -> float:
    """Little's law ``N = X (R + Z)``: give two of concurrency, throughput, response time and get
    the third (``Z`` = think time, 0 for an open system or a queue alone)."""
    given = {k: v for k, v in (("concurrency", concurrency), ("throughput", throughput),
                               ("response_time_s", response_time_s)) if v is not None}
    if len(given) != 2:
        raise ConfigError("give exactly two of concurrency, throughput, response_time_s",
                          key=",".join(given) or "littles_law")
    if concurrency is None:
        return throughput * (response_time_s + think_time_s)
    if throughput is None:
        return concurrency / (response_time_s + think_time_s)
    return concurrency / throughput - think_time_s


def erlang_b(servers: int, offered_load: float) -> float:
    """Erlang B blocking probability (recursion ``B_k = A B_{k-1} / (k + A B_{k-1})``)."""
    b = 1.0
    for k in range(1, int(servers) + 1):
        b = offered_load * b / (k + offered_load * b)
    return b


def erlang_c(servers: int, offered_load: float) -> float:
    """Erlang C: probability that an arrival waits in M/M/c, ``C = B / (1 - rho (1 - B))`` with
    ``rho = A/c``; 1.0 when ``A >= c`` (saturated).  ``offered_load`` A = arrival rate x service time."""
    c, a = int(servers), float(offered_load)
    if a >= c:
        return 1.0
    b = erlang_b(c, a)
    return b / (1.0 - (a / c) * (1.0 - b))


def lq_gunther(servers: int, rho: float) -> float:
    """Gunther's approximation ``R ~ S/(1 - rho^m)`` as mean queue length ``m rho^(m+1)/(1-rho^m)``
    (exact for m = 1, 2; underestimates otherwise)."""
    m = int(servers)
    return m * rho ** (m + 1) / (1.0 - rho**m) if rho > 0 else 0.0


def lq_sakasegawa(servers: int, rho: float, ca2: float = 1.0, cs2: float = 1.0) -> float:
    """Sakasegawa's G/G/m approximation ``Lq ~ rho^sqrt(2(m+1)) / (1-rho) x (ca^2 + cs^2)/2``."""
    m = int(servers)
    return rho ** math.sqrt(2 * (m + 1)) / (1.0 - rho) * (ca2 + cs2) / 2.0 if rho > 0 else 0.0


def square_root_staffing(offered_load: float, beta: float) -> float:
    """Square-root staffing ``c = A + beta sqrt(A)`` (Halfin-Whitt); ``beta`` sets quality of
    service (keep it constant while ``A`` grows).  Not rounded."""
    return offered_load + beta * math.sqrt(offered_load)


# -- the load-dependent queue ---------------------------------------------------------------------

@dataclass(frozen=True)
class QueueMetrics:
    """Steady state of an open queue.  Times in seconds, rates per second, lengths in requests.

    ``utilization`` = arrival rate / maximum completion rate (``X(c)``; ``a S / c`` for M/M/c).
    Unstable queues (``utilization >= 1``) have ``stable = False`` and infinite waits.
    """

    model: str
    arrival_rate: float
    servers: int
    utilization: float
    p_wait: float
    wait_mean_s: float
    response_mean_s: float
    queue_mean: float
    in_system_mean: float
    stable: bool
    _p_free: tuple = field(default=(), repr=False)      # P(arrival sees n < c), n = 0..c-1
    _mu_free: tuple = field(default=(), repr=False)     # per-request service rate joining at n+1
    _theta: float = field(default=0.0, repr=False)      # rate of the conditional wait
    _mu_busy: float = field(default=0.0, repr=False)    # per-request service rate at c

    def service_level(self, t_s: float) -> float:
        """``P(Wq <= t)``: share of arrivals that wait at most ``t_s`` seconds in the queue."""
        if not self.stable:
            return 0.0
        return 1.0 - self.p_wait * math.exp(-self._theta * t_s)

    def wait_quantile(self, p: float) -> float:
        """Queue-wait percentile (exact): 0 when ``p <= 1 - P(wait)``, else
        ``ln(P(wait)/(1-p)) / theta`` with ``theta = X(c) - a`` (``(c-A)/S`` for M/M/c)."""
        if not self.stable:
            return math.inf
        if p <= 1.0 - self.p_wait:
            return 0.0
        return math.log(self.p_wait / (1.0 - p)) / self._theta

    def response_survival(self, t_s: float) -> float:
        """``P(R > t)`` for the response time (queue wait + service)."""
        if not self.stable:
            return 1.0
        t = float(t_s)
        free = sum(p * math.exp(-mu * t) for p, mu in zip(self._p_free, self._mu_free))
        th, mu = self._theta, self._mu_busy
        if abs(th - mu) <= 1e-9 * mu:
            busy = math.exp(-mu * t) * (1.0 + mu * t)
        else:
            busy = (th * math.exp(-mu * t) - mu * math.exp(-th * t)) / (th - mu)
        return free + self.p_wait * busy

    def response_quantile(self, p: float) -> float:
        """Response-time percentile, e.g. ``response_quantile(0.95)`` (M/M/1: ``-ln(1-p) R``)."""
        if not self.stable:
            return math.inf
        hi = max(self.response_mean_s, 1e-12)
        while self.response_survival(hi) > 1.0 - p:
            hi *= 2.0
        return optimize.brentq(lambda t: self.response_survival(t) - (1.0 - p), 0.0, hi,
                               xtol=1e-14, rtol=1e-12)

    def to_dict(self) -> dict:
        return {"model": self.model, "arrival_rate": self.arrival_rate, "servers": self.servers,
                "utilization": self.utilization, "p_wait": self.p_wait,
                "wait_mean_s": _num(self.wait_mean_s), "response_mean_s": _num(self.response_mean_s),
                "response_p95_s": _num(self.response_quantile(0.95)),
                "wait_p95_s": _num(self.wait_quantile(0.95)), "queue_mean": _num(self.queue_mean),
                "in_system_mean": _num(self.in_system_mean), "stable": self.stable}


def load_dependent(arrival_rate: float, rates, *, model: str = "load-dependent") -> QueueMetrics:
    """Queue whose completion rate with ``k`` requests in service is ``rates[k-1]`` (k = 1..c;
    ``c = len(rates)`` slots, then FCFS waiting).  See the module docstring for the formulas."""
    a = _pos("arrival_rate", arrival_rate, allow_zero=True)
    x = np.asarray(rates, dtype=float)
    if x.ndim != 1 or x.size == 0 or np.any(~np.isfinite(x)) or np.any(x <= 0):
        raise ConfigError("rates must be positive finite completion rates, one per slot", key="rates")
    c = x.size
    mu = x / np.arange(1, c + 1)
    rho = a / x[-1]
    if rho >= 1.0:
        inf = math.inf
        return QueueMetrics(model, a, c, rho, 1.0, inf, inf, inf, inf, False)
    if a == 0:
        return QueueMetrics(model, a, c, 0.0, 0.0, 0.0, 1.0 / mu[0], 0.0, 0.0, True,
                            (1.0,), (float(mu[0]),), float(x[-1]), float(mu[-1]))
    logp = np.concatenate([[0.0], np.cumsum(np.log(a / x))])  # n = 0..c (unnormalised)
    m = logp.max()
    w = np.exp(logp - m)
    tail = w[c] / (1.0 - rho)                                 # sum over n >= c
    z = w[:c].sum() + tail
    p_free = w[:c] / z
    p_wait = tail / z
    lq = (w[c] / z) * rho / (1.0 - rho) ** 2
    ell = float(np.arange(c) @ p_free) + (w[c] / z) * (c / (1.0 - rho) + rho / (1.0 - rho) ** 2)
    return QueueMetrics(model, a, c, float(rho), float(p_wait), float(lq / a), float(ell / a),
                        float(lq), float(ell), True, tuple(p_free.tolist()), tuple(mu.tolist()),
                        float(x[-1] - a), float(mu[-1]))


def mm1(arrival_rate: float, service_time_s: float) -> QueueMetrics:
    """M/M/1: ``R = S/(1-rho)``, ``Lq = rho^2/(1-rho)``, ``Wq = rho S/(1-rho)``."""
    return mmc(arrival_rate, service_time_s, 1)


def mmc(arrival_rate: float, service_time_s: float, servers: int) -> QueueMetrics:
    """M/M/c (Erlang C): ``A = a S``, ``P(wait) = C(c, A)``, ``Wq = C S/(c - A)``, ``R = S + Wq``."""
    s = _pos("service_time_s", service_time_s)
    c = int(servers)
    if c < 1:
        raise ConfigError(f"servers must be >= 1, got {servers!r}", key="servers")
    return load_dependent(arrival_rate, np.arange(1, c + 1) / s, model=f"M/M/{c}")


def servers_for_wait(arrival_rate: float, service_time_s: float, wait_target_s: float, *,
                     percentile: float | None = None, max_utilization: float = 1.0,
                     max_servers: int = 100_000) -> int:
    """Fewest M/M/c servers with mean queue wait (``percentile=None``) or the ``percentile`` of
    the queue wait at most ``wait_target_s``, and utilisation ``< max_utilization``."""
    a = _pos("arrival_rate", arrival_rate)
    s = _pos("service_time_s", service_time_s)
    target = _pos("wait_target_s", wait_target_s, allow_zero=True)
    c = max(1, math.floor(a * s / min(max_utilization, 1.0)) + 1)
    while c <= max_servers:
        q = mmc(a, s, c)
        if q.stable and q.utilization < max_utilization:
            got = q.wait_mean_s if percentile is None else q.wait_quantile(percentile)
            if got <= target:
                return c
        c += 1
    raise ConfigError(f"no pool of up to {max_servers} servers meets a {target:g} s wait target",
                      key="wait_target_s", hint="relax the target or check the units")


def headroom(arrival_rate: float, service_time_s: float, servers: int, *,
             wait_target_s: float | None = None, percentile: float | None = None,
             max_utilization: float = 1.0) -> dict:
    """How much the arrival rate of an M/M/c can grow: the largest rate keeping utilisation
    below ``max_utilization`` and (if given) the mean/percentile queue wait within
    ``wait_target_s``.  Returns utilization, max_arrival_rate and growth = max/current - 1."""
    a = _pos("arrival_rate", arrival_rate)
    s = _pos("service_time_s", service_time_s)
    cap = int(servers) / s * min(max_utilization, 1.0 - 1e-12)
    if wait_target_s is not None:
        def excess(rate):
            q = mmc(rate, s, servers)
            got = q.wait_mean_s if percentile is None else q.wait_quantile(percentile)
            return got - wait_target_s
        if excess(cap) > 0:
            cap = optimize.brentq(excess, cap * 1e-9, cap, xtol=cap * 1e-12)
    return {"utilization": a * s / int(servers), "max_arrival_rate": cap, "growth": cap / a - 1.0}


# -- worker pools ----------------------------------------------------------------------------------

def worker_pool(jobs_per_min: float, mean_job_s: float, workers: int) -> QueueMetrics:
    """A job-worker pool as M/M/c: ``jobs_per_min`` arrivals, ``mean_job_s`` per job, ``workers``.
    Rates in the result are per second; ``wait_mean_s`` is the mean time a job sits queued."""
    return mmc(_pos("jobs_per_min", jobs_per_min, allow_zero=True) / 60.0, mean_job_s, workers)


def workers_needed(jobs_per_min: float, mean_job_s: float, wait_target_s: float, *,
                   percentile: float | None = None, max_utilization: float = 1.0) -> int:
    """Fewest workers so that the mean queue wait (or its ``percentile``, e.g. 0.8 for an
    "80 % of jobs start within 20 s" target) is at most ``wait_target_s``."""
    return servers_for_wait(_pos("jobs_per_min", jobs_per_min) / 60.0, mean_job_s, wait_target_s,
                            percentile=percentile, max_utilization=max_utilization)


# -- instances for a target load -----------------------------------------------------------------

@dataclass(frozen=True)
class InstancePlan:
    """Instances needed for ``target_rate`` at a response-time percentile target."""

    instances: int
    concurrency_per_instance: int
    rate_per_instance: float
    utilization: float
    p_wait: float
    wait_mean_s: float
    response_mean_s: float
    response_target_quantile_s: float
    percentile: float
    target_rate: float
    latency_target_s: float
    method: str
    warnings: tuple = ()

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _per_instance_rates(per_instance, service_time_s, servers_per_instance, concurrency,
                        max_concurrency, warnings) -> tuple[list[np.ndarray], str]:
    """Candidate completion-rate vectors (one per pool size) for one instance."""
    if hasattr(per_instance, "throughput_at") and hasattr(per_instance, "n_max_tested"):
        fit = per_instance
        tested = float(fit.n_max_tested)
        if concurrency is not None:
            sizes = [int(concurrency)]
        else:
            top = max_concurrency or min(fit.n_peak or math.inf, 2.0 * tested)
            sizes = list(range(1, max(1, math.floor(top)) + 1))
        if sizes[-1] > 2.0 * tested:
            warnings.append(f"concurrency per instance up to {sizes[-1]} goes beyond 2x the largest "
                            f"tested ({tested:g}): the USL is extrapolated")
        xs = np.asarray(fit.throughput_at(np.arange(1, sizes[-1] + 1, dtype=float)), dtype=float)
        cands = [xs[:c] for c in sizes if np.all(xs[:c] > 0)]
        return cands, f"USL per instance ({fit.model}) + load-dependent M/M/c queue"
    capacity = _pos("per_instance", per_instance)
    if servers_per_instance is None:
        servers_per_instance = 1 if service_time_s is None else max(1, round(capacity * service_time_s))
        if service_time_s is not None and abs(capacity * service_time_s - servers_per_instance) > 0.05:
            warnings.append(f"capacity x service time = {capacity * service_time_s:.3g} is not a whole "
                            f"number of servers; using {servers_per_instance}")
    c = int(servers_per_instance)
    return [np.arange(1, c + 1) * capacity / c], f"M/M/{c} per instance (capacity {capacity:g}/s)"


def instances_needed(target_rate: float, p95_target_s: float, per_instance, *,
                     service_time_s: float | None = None, servers_per_instance: int | None = None,
                     concurrency: int | None = None, max_concurrency: int | None = None,
                     percentile: float = 0.95, max_utilization: float = 1.0,
                     max_instances: int = 100_000) -> InstancePlan:
    """Fewest instances that serve ``target_rate`` (per second, split evenly) with the
    ``percentile`` response time (default p95) at most ``p95_target_s`` seconds.

    ``per_instance`` is either a fitted :class:`~capplan.models.usl.UslFit` (throughput per
    second vs concurrency in one instance) or a capacity in requests/s.  With a USL, each
    instance is a load-dependent queue with ``c`` slots completing ``X(k)`` requests/s with ``k``
    busy; ``c`` is ``concurrency`` if given, else the best pool size up to ``N*`` (capped at 2x the
    largest tested load, or ``max_concurrency``).  With a capacity, each instance is M/M/c with
    ``c = servers_per_instance`` (default ``round(capacity x service_time_s)`` or 1).  Utilisation
    per instance is kept below ``max_utilization``.  Raises ConfigError when no number of instances
    meets the target (it is below the latency of a lone request).
    """
    rate = _pos("target_rate", target_rate)
    target = _pos("p95_target_s", p95_target_s)
    warnings: list[str] = []
    cands, method = _per_instance_rates(per_instance, service_time_s, servers_per_instance,
                                        concurrency, max_concurrency, warnings)
    if not cands:
        raise InsufficientData("the per-instance model has no usable concurrency level",
                               needed=1, have=0, unit="levels")
    best_single = min(-math.log(1 - percentile) / (r[0]) for r in cands)  # lone-request quantile
    if best_single > target:
        raise ConfigError(f"a lone request already takes {best_single:.4g} s at p{percentile * 100:g}"
                          f" (> target {target:g} s): no number of instances meets it",
                          key="p95_target_s", hint="relax the latency target or make requests faster")
    x_max = max(float(r[-1]) for r in cands)
    k = max(1, math.ceil(rate / (x_max * min(max_utilization, 1.0))))
    while k <= max_instances:
        a = rate / k
        best = None
        for r in cands:
            if a >= r[-1] * min(max_utilization, 1.0):
                continue
            q = load_dependent(a, r)
            if not q.stable:
                continue
            rq = q.response_quantile(percentile)
            if rq <= target and (best is None or rq < best[1]):
                best = (q, rq)
        if best is not None:
            q, rq = best
            return InstancePlan(k, q.servers, a, q.utilization, q.p_wait, q.wait_mean_s,
                                q.response_mean_s, rq, percentile, rate, target, method,
                                tuple(warnings))
        k += 1
    raise ConfigError(f"more than {max_instances} instances would be needed", key="target_rate")


def mva_closed(n_users: int, service_time_s: float, think_time_s: float = 0.0) -> list[dict]:
    """Exact mean-value analysis of a closed system: one queueing centre (demand ``S``) plus think
    time ``Z``.  Returns ``[{"n", "x", "r"}]`` for 1..n_users (``R = S (1 + Q(n-1))``,
    ``X = n/(R + Z)``, ``Q = X R``; Reiser & Lavenberg 1980)."""
    s = _pos("service_time_s", service_time_s)
    q, out = 0.0, []
    for n in range(1, int(n_users) + 1):
        r = s * (1.0 + q)
        x = n / (r + think_time_s)
        q = x * r
        out.append({"n": n, "x": x, "r": r})
    return out
