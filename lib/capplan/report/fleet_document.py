"""The fleet summary: rank the risks of many services' summary.json files, and lay out fleet.md.

:func:`rank_risks` takes the per-service results of :func:`capplan.runner.fleet.analyse_service` (each
with its ``summary``) and returns one row per risk, most urgent first:

0. a resource already over its limit, or a missed target (critical misses first);
1. a runway crossing within the horizon, earliest projected date first, then higher probability;
2. a target at risk (in its warning zone);
3. a runway that does not cross in the horizon but may (P(cross) > 0), by probability;
4. unknowns: insufficient data or evidence.

:func:`build_fleet_document` turns fleet.json into blocks for :mod:`capplan.report.render`; it
computes no number (every figure comes from a service's summary.json through fleet.json).
"""

from __future__ import annotations

__all__ = ["rank_risks", "build_fleet_document"]

_NEVER = "9999-12-31"


def _risk_rows(res: dict) -> list[dict]:
    """Risk candidates of one service, from its summary.json (runway and targets sections)."""
    rows = []
    secs = (res.get("summary") or {}).get("sections", {})
    for f in secs.get("runway", []):
        x, d = f.get("extra", {}), f.get("display", {})
        rows.append({"service": res["service"], "name": res["name"], "kind": "runway",
                     "finding": f["id"], "label": f["label"], "status": f.get("status"),
                     "crossing": x.get("crossing"), "crossing_lo": x.get("crossing_lo"),
                     "crossing_hi": x.get("crossing_hi"), "p_cross": x.get("p_cross_within_horizon"),
                     "utilisation": x.get("utilisation"), "critical": False,
                     "display": {"crossing": d.get("crossing", "n/a"), "p_cross": d.get("p_cross", "n/a"),
                                 "utilisation": d.get("utilisation", "n/a"), "value": d.get("value", "n/a"),
                                 "limit": d.get("limit", "n/a")},
                     "detail": f"now {d.get('value', 'n/a')}; limit {d.get('limit', 'n/a')}"
                     + (f" ({f['detail']})" if f.get("status") == "insufficient data" else "")})
    for f in secs.get("targets", []):
        d = f.get("display", {})
        rows.append({"service": res["service"], "name": res["name"], "kind": "target",
                     "finding": f["id"], "label": f["label"], "status": f.get("status"),
                     "crossing": None, "crossing_lo": None, "crossing_hi": None, "p_cross": None,
                     "utilisation": None, "critical": bool(f.get("extra", {}).get("critical")),
                     "display": {"value": d.get("value", "n/a"), "target": d.get("target", "n/a"),
                                 "crossing": "n/a", "p_cross": "n/a", "utilisation": "n/a"},
                     "detail": f.get("detail")})
    return rows


def _tier(r: dict) -> int | None:
    s = r["status"]
    if s in ("already over limit", "misses"):
        return 0
    if s == "crosses":
        return 1
    if s == "at risk":
        return 2
    if s == "not within horizon" and (r.get("p_cross") or 0) > 0:
        return 3
    if s in ("insufficient data", "insufficient evidence"):
        return 4
    return None


def rank_risks(results: list[dict]) -> list[dict]:
    """Every risk across services, most urgent first (ranking in the module docstring)."""
    rows = [r for res in results for r in _risk_rows(res) if _tier(r) is not None]
    rows.sort(key=lambda r: (_tier(r), not r["critical"], str(r["crossing"] or _NEVER),
                             -(r["p_cross"] or 0.0), r["service"], r["label"]))
    for i, r in enumerate(rows, 1):
        r["rank"], r["tier"] = i, _tier(r)
    return rows


def build_fleet_document(fleet: dict) -> list[tuple]:
    """Blocks (:mod:`capplan.report.render`) for a fleet.json dict; computes no number."""
    svcs = fleet["services"]
    b: list[tuple] = [("title", f"Fleet capacity summary: {fleet['name']}",
                       f"{len(svcs)} services · generated {fleet['generated_at'][:10]} · "
                       f"run {fleet['run_id']} · status {fleet['status']}")]
    if any(s.get("synthetic") for s in svcs):
        from capplan.report.document import SYNTHETIC

        b.append(("banner", SYNTHETIC))
    risks = fleet["risks"][: fleet["top"]]
    b.append(("h2", f"Top risks (the {len(risks)} most urgent of {len(fleet['risks'])})"))
    if risks:
        b.append(("table", ["#", "Service", "Resource or target", "Status", "Projected crossing "
                            "(95% interval)", "P(cross in horizon)", "Utilisation", "Evidence"],
                  [[str(r["rank"]), r["service"], r["label"],
                    r["status"] + (" (critical)" if r["critical"] else ""),
                    r["display"]["crossing"], r["display"]["p_cross"], r["display"]["utilisation"],
                    r.get("detail") or ""] for r in risks],
                  "Order: over limit and missed targets, then crossings by earliest date, then "
                  "targets at risk, then the probability of a crossing within the horizon."))
    else:
        b.append(("p", "No risk found in any service."))
    b.append(("h2", "Services"))
    b.append(("table", ["Service", "Status", "Crossings", "Targets missed", "Report"],
              [[s["service"], s["status"], str(s["counts"].get("crosses", 0)
                                               + s["counts"].get("already over limit", 0)),
                str(s["counts"].get("misses", 0)), s.get("report") or "none"] for s in svcs], None))
    failed = [s for s in svcs if s["status"] == "failed"]
    if failed:
        b.append(("h2", "Failed services"))
        b.append(("ul", [f"{s['service']}: {s['error']}" for s in failed]))
    b.append(("p", "Every number here is read from fleet.json, which takes it from each "
                   "service's summary.json (services/<name>/summary.json)."))
    return b
