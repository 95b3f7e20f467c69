"""Writers for a comparison (:class:`capplan.analysis.compare.Comparison`): JUnit XML, a
Markdown table and JSON.  They render what the comparison holds and compute nothing.

JUnit: one ``<testsuite name="capplan compare">`` with one ``<testcase>`` per metric
(``classname`` ``capplan.compare.<kind>``): ``regressed`` is a ``<failure>``, ``insufficient
evidence`` is ``<skipped>`` (or a ``<failure>`` with ``fail_on="insufficient"``), the rest
pass; the reason is in ``<system-out>``.  The layout is the common subset that Jenkins,
GitLab (``artifacts:reports:junit``) and GitHub test-report actions read.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from capplan.errors import OutputError

__all__ = ["junit_xml", "markdown_table", "comparison_json", "write_junit", "write_markdown",
           "write_text"]

_BADGE = {"regressed": "❌ regressed", "improved": "✅ improved", "no change": "➖ no change",
          "insufficient evidence": "⚠️ insufficient evidence", "changed": "↕️ changed"}


def _fmt_value(v, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit == "seconds":
        return f"{v * 1000:.4g} ms" if abs(v) < 1 else f"{v:.4g} s"
    if unit == "ratio":
        return f"{v * 100:.2f}%"
    if unit.endswith("per_second"):
        return f"{v:,.1f}/s"
    return f"{v:.4g}" + (f" {unit}" if unit else "")


def _fmt_change(x, kind: str) -> str:
    if x is None:
        return "n/a"
    if kind == "absolute":
        return f"{x * 100:+.2f} pp"
    if x >= 9:                       # +900 % and more read better as a factor
        return f"×{1 + x:.3g}"
    return f"{x * 100:+.1f}%"


def _rows(cmp) -> list[dict]:
    out = []
    for m in cmp.metrics:
        ci = "n/a" if m.change_lo is None else \
            f"{_fmt_change(m.change_lo, m.change_kind)} to {_fmt_change(m.change_hi, m.change_kind)}"
        out.append({"metric": m.label, "baseline": _fmt_value(m.baseline, m.unit),
                    "candidate": _fmt_value(m.candidate, m.unit),
                    "change": _fmt_change(m.change, m.change_kind), "interval": ci,
                    "conf": f"{round(m.conf * 100, 2):g}%", "verdict": m.verdict,
                    "reason": m.reason, "evidence": m.evidence})
    return out


def markdown_table(cmp, *, title: str = "capplan compare") -> str:
    """A pull-request comment / ``$GITHUB_STEP_SUMMARY`` section: overall verdict, one table
    row per metric (baseline, candidate, change, interval, verdict), then the notes."""
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = [f"### {esc(title)}: {_BADGE.get(cmp.verdict, cmp.verdict)}", "",
             f"Baseline `{esc(cmp.baseline.get('path') or cmp.baseline.get('name'))}` vs "
             f"candidate `{esc(cmp.candidate.get('path') or cmp.candidate.get('name'))}`; "
             f"intervals are simultaneous at {cmp.conf:.0%}.", "",
             "| Metric | Baseline | Candidate | Change | Interval | Verdict |",
             "|---|---:|---:|---:|---|---|"]
    for r in _rows(cmp):
        lines.append(f"| {esc(r['metric'])} | {r['baseline']} | {r['candidate']} | "
                     f"{r['change']} | {r['interval']} ({r['conf']}) | "
                     f"{_BADGE.get(r['verdict'], r['verdict'])} |")
    lines.append("")
    for n in cmp.notes:
        lines.append(f"- {esc(n)}")
    details = [f"- **{esc(r['metric'])}**: {esc(r['reason'])}" for r in _rows(cmp)]
    if details:
        lines += ["", "<details><summary>Reasons</summary>", "", *details, "", "</details>"]
    return "\n".join(lines).rstrip() + "\n"


def junit_xml(cmp, *, fail_on: str = "regression") -> str:
    """JUnit XML text, one test case per metric (module docstring)."""
    rows = _rows(cmp)
    failures = sum(1 for r in rows if r["verdict"] == "regressed" or (
        fail_on == "insufficient" and r["verdict"] == "insufficient evidence"))
    skipped = sum(1 for r in rows if r["verdict"] == "insufficient evidence") \
        if fail_on != "insufficient" else 0
    root = ET.Element("testsuites", name="capplan", tests=str(len(rows)),
                      failures=str(failures), errors="0", skipped=str(skipped))
    suite = ET.SubElement(root, "testsuite", name="capplan compare", tests=str(len(rows)),
                          failures=str(failures), errors="0", skipped=str(skipped), time="0")
    props = ET.SubElement(suite, "properties")
    for k, v in (("baseline", cmp.baseline.get("path") or cmp.baseline.get("name")),
                 ("candidate", cmp.candidate.get("path") or cmp.candidate.get("name")),
                 ("verdict", cmp.verdict), ("confidence", cmp.conf)):
        ET.SubElement(props, "property", name=k, value=str(v))
    for m, r in zip(cmp.metrics, rows):
        case = ET.SubElement(suite, "testcase", name=m.metric,
                             classname=f"capplan.compare.{cmp.kind}", time="0")
        summary = (f"{r['metric']}: {r['baseline']} → {r['candidate']} ({r['change']}, "
                   f"{r['conf']} interval {r['interval']}): {r['verdict']}")
        if r["verdict"] == "regressed" or (fail_on == "insufficient"
                                           and r["verdict"] == "insufficient evidence"):
            el = ET.SubElement(case, "failure", message=summary, type=r["verdict"])
            el.text = r["reason"]
        elif r["verdict"] == "insufficient evidence":
            ET.SubElement(case, "skipped", message=summary)
        out = ET.SubElement(case, "system-out")
        out.text = r["reason"]
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"


def comparison_json(cmp) -> str:
    """The comparison as one strict-JSON object (``Comparison.to_dict()``)."""
    return json.dumps(cmp.to_dict(), allow_nan=False, default=str)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` atomically (temp file + rename); OutputError when it cannot."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, p)
    except OSError as exc:
        raise OutputError(f"cannot write {p}: {exc.strerror}",
                          hint="check the directory exists and is writable") from None
    return p


def write_junit(cmp, path, *, fail_on: str = "regression") -> Path:
    return write_text(path, junit_xml(cmp, fail_on=fail_on))


def write_markdown(cmp, path, *, title: str = "capplan compare") -> Path:
    """Write the table (append it to ``$GITHUB_STEP_SUMMARY`` with ``cat FILE >> ...``)."""
    return write_text(path, markdown_table(cmp, title=title))
