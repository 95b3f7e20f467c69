"""Prometheus alerting rules from the targets and capacity entries of a params file.

``capplan alerts PARAMS`` writes one rule group whose thresholds are read from the very objects
the handoff document is built from (:func:`capplan.analysis.targets.parse_targets`,
:func:`capplan.analysis.runway.parse_capacity`, with the notebooks' defaults for keys the file omits), so
the numbers in the document are the numbers that page.

Metric names: a canonical capplan name is written with the exporter series it comes from
(:mod:`capplan.collect.exporters`: ``pg_blks_hit_total`` -> ``pg_stat_database_blks_hit{datid!="0"}``,
``redis_used_memory_bytes`` -> ``redis_memory_used_bytes``); names no exporter maps (the
application's own ``http_requests_total``) are used as they are.  ``selector`` (label matchers,
e.g. ``job="checkout"``) is added to every series; ``by`` keeps those labels apart
(``sum by (instance)``) instead of adding up the whole selection.

Rules (labels ``severity``, ``threshold``, ``capplan_kind``, ``service``):

* threshold targets: the quantity as evaluated in the report -- ratios from counter rates in both
  numerator and denominator, ``sum(rate(hits[5m])) / (sum(rate(hits[5m])) + sum(rate(misses[5m])))``
  (REFERENCE gotchas 1, 4); ``<x>_per_second`` as ``sum(rate(<x>_total[5m]))``; gauges by their
  statistic over the last hour (``quantile_over_time`` for pNN, ``max_over_time`` ...).  One rule
  per threshold: ``warn`` -> severity ``warning``; the target (``min``/``max``) and ``crit`` ->
  severity ``critical`` (label ``threshold`` = warn | target | crit).
* SLOs: multiwindow, multi-burn-rate alerts (Google SRE Workbook, ch. 5, "Alerting on SLOs",
  table 5-8): page when 2 % of the budget burns in 1 h (5 m short window) or 5 % in 6 h (30 m);
  ticket when 10 % burns in 1 d (2 h) or 10 % in 3 d (6 h).  The burn-rate factor is
  ``budget share * window / long window`` (14.4, 6, 3, 1 for a 30-day window).
* capacity entries with a limit: utilisation now (``usage / limit`` above ``util_warn`` /
  ``util_crit``, default 0.8 / 0.9, the postgres_exporter mixin's 80 % of usable connections) and
  predicted exhaustion, ``predict_linear((usage)[6h:5m], 1d) >= limit`` (critical) and
  ``predict_linear((usage)[1d:5m], 7d) >= limit`` (warning).  ``pg_usable_connections`` is
  ``max_connections - superuser_reserved_connections - reserved_connections`` (PG16+, else 0).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from capplan.errors import ConfigError

__all__ = ["BURN_WINDOWS", "quantity_expr", "build_rules", "rules_yaml", "write_rules",
           "alerts_from_params"]

#: (severity, long window, short window, share of the budget burnt) -- SRE Workbook table 5-8.
BURN_WINDOWS = (("critical", "1h", "5m", 0.02), ("critical", "6h", "30m", 0.05),
                ("warning", "1d", "2h", 0.10), ("warning", "3d", "6h", 0.10))
_HOURS = {"5m": 5 / 60, "30m": 0.5, "1h": 1, "2h": 2, "6h": 6, "1d": 24, "3d": 72}
_PLAIN = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^{}]*\})?$")
_SUMS = {"pg_client_backends_total": "pg_client_backends"}


def _agg(fn: str, by: tuple[str, ...]) -> str:
    return f"{fn} by ({', '.join(by)})" if by else fn


def _series(name: str, selector: str) -> str:
    """The exporter expression for a canonical metric, with ``selector`` added."""
    from capplan.collect import exporters

    m = exporters.by_canonical(name)
    if m is not None:
        return exporters.promql(m, selector, keep=())
    return f"{name}{{{selector}}}" if selector else name


def _rate(name: str, selector: str, window: str, by: tuple[str, ...]) -> str:
    expr = _series(name, selector)
    inner = f"rate({expr}[{window}])" if _PLAIN.match(expr) else f"rate(({expr})[{window}:])"
    return f"{_agg('sum', by)} ({inner})"


def _gauge(name: str, selector: str, by: tuple[str, ...], fn: str = "sum") -> str:
    from capplan.collect import exporters

    if name == "pg_usable_connections":
        _k, _u, (mx, su, res) = exporters.DERIVED[name]
        a, b, c = (f"{_agg('max', by)} ({_series(x, selector)})" for x in (mx, su, res))
        return f"({a} - {b} - ({c} or {a} * 0))"
    if fn == "sum" and name.endswith(("_seconds", "_ratio")):
        fn = "max"       # a latency or a ratio is not additive: the worst instance counts
    return f"{_agg(fn, by)} ({_series(_SUMS.get(name, name), selector)})"


def quantity_expr(name: str, *, selector: str = "", by: tuple[str, ...] = (),
                  window: str = "5m") -> str:
    """PromQL for a quantity as capplan names it (stored gauge, ratio, ``_per_second`` rate)."""
    from capplan.analysis.evidence import RATIOS

    if name in RATIOS:
        num, other, how = RATIOS[name]
        a, b = _rate(num, selector, window, by), _rate(other, selector, window, by)
        if how == "complement":          # 1 - failed / total
            return f"(1 - {a} / {b})"
        return f"({a} / ({a} + {b}))"
    if name.endswith("_per_second") and name not in _SUMS:
        return _rate(name[: -len("_per_second")] + "_total", selector, window, by)
    return _gauge(name, selector, by)


def _camel(text: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[^A-Za-z0-9]+", text) if w)


def _fmt(v: float) -> str:
    """A threshold exactly as parsed (integers without a fraction, else the shortest repr)."""
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def _target_value(t, selector: str, by: tuple[str, ...]) -> str:
    """The alerting expression of a threshold target's statistic."""
    if t.statistic == "ratio" or t.metric.endswith("_per_second"):
        return quantity_expr(t.metric, selector=selector, by=by)
    e = quantity_expr(t.metric, selector=selector, by=by)
    q = t.quantile
    if q is not None:
        return f"quantile_over_time({_fmt(q)}, ({e})[1h:1m])"
    fn = {"mean": "avg", "max": "max", "min": "min"}.get(t.statistic)
    return f"{fn}_over_time(({e})[1h:1m])" if fn else e


def _threshold_rules(t, selector, by, labels) -> list[dict]:
    value = _target_value(t, selector, by)
    bad = "<" if t.direction == "min" else ">"
    side = "below" if t.direction == "min" else "above"
    levels = []
    if t.warn is not None:
        levels.append(("warn", t.warn, "warning"))
    levels.append(("target", t.bound, "critical"))
    if t.crit is not None:
        levels.append(("crit", t.crit, "critical"))
    rules = []
    for kind, thr, sev in levels:
        rules.append({
            "alert": f"Capplan{_camel(t.name)}",
            "expr": f"{value} {bad} {_fmt(thr)}",
            "for": "10m",
            "labels": {**labels, "severity": sev, "threshold": kind, "capplan_kind": "target"},
            "annotations": {
                "summary": f"{t.name} {side} its {kind} threshold {_fmt(thr)} ({t.unit or 'value'})",
                "description": f"{t.name} ({t.metric}, {t.statistic}); the handoff "
                               f"document's {t.direction} target is {_fmt(t.bound)}"
                               + (f", warning at {_fmt(t.warn)}" if t.warn is not None else "")
                               + (f", critical at {_fmt(t.crit)}" if t.crit is not None else "") + ".",
                "threshold": _fmt(thr)}})
    return rules


def _error_ratio(t, selector: str, by: tuple[str, ...], window: str) -> str:
    total = _rate(t.total_metric, selector, window, by)
    if t.bad_metric:
        return f"({_rate(t.bad_metric, selector, window, by)} / {total})"
    return f"(1 - {_rate(t.good_metric, selector, window, by)} / {total})"


def _slo_rules(t, selector, by, labels) -> list[dict]:
    budget = t.bound if t.slo == "error_rate" else 1 - t.bound
    window_h = t.window.total_seconds() / 3600
    rules = []
    for sev, long_w, short_w, share in BURN_WINDOWS:
        if _HOURS[long_w] > window_h:
            continue
        factor = share * window_h / _HOURS[long_w]
        thr = float(format(factor * budget, ".6g"))
        expr = (f"{_error_ratio(t, selector, by, long_w)} > {_fmt(thr)}\nand\n"
                f"{_error_ratio(t, selector, by, short_w)} > {_fmt(thr)}")
        rules.append({
            "alert": f"Capplan{_camel(t.name)}BudgetBurn",
            "expr": expr,
            "labels": {**labels, "severity": sev, "threshold": f"burn{long_w}",
                       "capplan_kind": "slo", "long_window": long_w, "short_window": short_w},
            "annotations": {
                "summary": f"{t.name}: error budget burning {factor:.3g}x too fast over {long_w}",
                "description": f"SLO {t.slo} objective {_fmt(t.bound)} over "
                               f"{window_h / 24:g}d: at this rate {share:.0%} of the budget is "
                               f"spent in {long_w} (SRE Workbook multiwindow burn-rate alert).",
                "threshold": _fmt(thr), "burn_rate": f"{factor:.4g}"}})
    return rules


def _capacity_rules(c, selector, by, labels, util_warn, util_crit) -> list[dict]:
    from capplan.analysis.evidence import RATIOS

    if c.metric in RATIOS:
        return []
    usage = quantity_expr(c.metric, selector=selector, by=by)
    if c.limit is not None:
        if c.limit <= 0:
            return []
        limit, limit_text = _fmt(c.limit), f"{_fmt(c.limit)} ({c.limit_source or 'params'})"
    else:
        limit = _gauge(c.limit_metric, selector, by, fn="max")
        limit_text = f"{c.limit_metric} (its current value)"
        if c.limit_metric == "redis_maxmemory_bytes":   # maxmemory 0 means no limit
            limit = f"({limit} > 0)"
    name = f"Capplan{_camel(c.name)}"
    rules = []
    for kind, frac, sev in (("utilisation_warn", util_warn, "warning"),
                            ("utilisation_crit", util_crit, "critical")):
        rules.append({
            "alert": f"{name}Utilisation", "expr": f"{usage} / {limit} > {_fmt(frac)}", "for": "10m",
            "labels": {**labels, "severity": sev, "threshold": kind, "capplan_kind": "capacity"},
            "annotations": {"summary": f"{c.name} above {frac:.0%} of its limit",
                            "description": f"{c.metric} is above {frac:.0%} of {limit_text}.",
                            "threshold": _fmt(frac)}})
    for sev, look, ahead, ahead_s in (("critical", "6h", "1 day", 86_400),
                                      ("warning", "1d", "7 days", 7 * 86_400)):
        rules.append({
            "alert": f"{name}ExhaustionPredicted",
            "expr": f"predict_linear(({usage})[{look}:5m], {ahead_s}) >= {limit}", "for": "1h",
            "labels": {**labels, "severity": sev, "threshold": f"predicted_{look}",
                       "capplan_kind": "capacity"},
            "annotations": {"summary": f"{c.name} predicted to reach its limit within {ahead}",
                            "description": f"A linear fit of {c.metric} over the last {look} "
                                           f"reaches {limit_text} within {ahead}.",
                            "threshold": limit if c.limit is not None else c.limit_metric}})
    return rules


def build_rules(targets, capacity, *, group: str, service: str = "", selector: str = "",
                by: tuple[str, ...] = (), util_warn: float = 0.8, util_crit: float = 0.9) -> dict:
    """A Prometheus rule file (dict) from parsed targets and capacity specs (module docstring)."""
    if not 0 < util_warn <= util_crit <= 1:
        raise ConfigError(f"utilisation thresholds must satisfy 0 < warn <= crit <= 1, got "
                          f"{util_warn:g} and {util_crit:g}", key="--util-warn/--util-crit")
    labels = {"service": service} if service else {}
    rules: list[dict] = []
    for t in targets:
        if t.is_slo:
            rules += _slo_rules(t, selector, by, labels)
        elif t.metric:
            rules += _threshold_rules(t, selector, by, labels)
    for c in capacity:
        rules += _capacity_rules(c, selector, by, labels, util_warn, util_crit)
    return {"groups": [{"name": group, "rules": rules}]}


def rules_yaml(rules: dict) -> str:
    import yaml

    return ("# Generated by capplan alerts from the same params as the handoff document; do not "
            "edit by hand.\n" + yaml.safe_dump(rules, sort_keys=False, width=120,
                                               allow_unicode=True))


def alerts_from_params(path: str | Path, *, selector: str = "", by: tuple[str, ...] = (),
                       util_warn: float = 0.8, util_crit: float = 0.9) -> dict:
    """Rules for a ``capplan run`` params file (checked like ``capplan run`` checks it)."""
    from capplan.runner.fleet import notebook_defaults
    from capplan.runner.params import load_params
    from capplan.analysis.runway import parse_capacity
    from capplan.analysis.targets import parse_targets

    params = load_params(path)
    values = {**notebook_defaults(), **params.values}
    targets = parse_targets(values.get("targets"), path=params.path)
    capacity = parse_capacity(values.get("capacity"), path=params.path)
    return build_rules(targets, capacity, group=f"capplan-{params.name}",
                       service=str(values.get("service") or ""), selector=selector, by=by,
                       util_warn=util_warn, util_crit=util_crit)


def write_rules(rules: dict, out: str | Path) -> Path:
    """Write the rule file atomically (temp file + rename)."""
    from capplan.errors import OutputError

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text(rules_yaml(rules), encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}",
                          hint="choose a writable path with --out") from exc
    return out
