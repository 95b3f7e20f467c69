"""Provenance by construction: every number rendered in report.html sits in an element that names
the summary.json finding it came from (``data-finding``), and is a value or a display string of
THAT finding.  Replaces the old check that numbers appear anywhere in summary.json."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
#: Numbers the document's fixed wording states (the 95 % and 80 % confidence levels).
FIXED = {"95", "80"}
#: Top-level summary.json keys that are run-level figures (not findings), under ref "summary".
_RUN_KEYS = ("run_id", "service", "from_phase", "to_phase", "generated_at", "data_window",
             "windows", "previous", "name", "loadtest_comparison")


def _numbers(text: str) -> list[str]:
    return [n.rstrip(",") for n in NUMBER.findall(text)]


class _Cells(HTMLParser):
    """(refs, text) for every text node in <main>, refs = the innermost data-finding."""

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []
        self.skip = 0
        self.out: list[tuple[str | None, str]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("style", "script", "title"):
            self.skip += 1
        if tag in ("img", "meta", "br", "hr", "link", "input"):
            return
        inherited = next((r for _t, r in reversed(self.stack) if r), None)
        self.stack.append((tag, a.get("data-finding") or inherited))

    def handle_endtag(self, tag):
        if tag in ("style", "script", "title"):
            self.skip -= 1
        while self.stack:
            t, _r = self.stack.pop()
            if t == tag:
                break

    def handle_data(self, data):
        if self.skip or not data.strip():
            return
        ref = self.stack[-1][1] if self.stack else None
        self.out.append((ref, data))


def _tokens(summary: dict) -> dict[str, set[str]]:
    """Numbers each ref may show: every value and display string of the finding, as JSON."""
    out: dict[str, set[str]] = {}
    for fs in summary.get("sections", {}).values():
        for f in fs:
            out[f["id"]] = set(_numbers(json.dumps(f, ensure_ascii=False)))
    out["summary"] = set(_numbers(json.dumps({k: summary.get(k) for k in _RUN_KEYS},
                                             ensure_ascii=False)))
    for nb, items in summary.get("notes", {}).items():
        out[f"notes.{nb}"] = set(_numbers(json.dumps([nb, items], ensure_ascii=False)))
    return out


def provenance_errors(html: str, summary: dict) -> list[str]:
    """Every rendered number that is not a value or display string of its element's finding."""
    p = _Cells()
    p.feed(html)
    tokens = _tokens(summary)
    errors = []
    for ref, text in p.out:
        for n in _numbers(text):
            if n in FIXED:
                continue
            if ref is None:
                errors.append(f"{n!r} in {text.strip()[:80]!r} names no finding")
                continue
            allowed = set().union(*(tokens.get(r, set()) for r in ref.split()))
            if n not in allowed:
                errors.append(f"{n!r} in {text.strip()[:80]!r} is not in finding(s) {ref}")
    return errors


@pytest.fixture(scope="module")
def report(demo_run):
    html = (demo_run.run_dir / "report.html").read_text(encoding="utf-8")
    summary = json.loads((demo_run.run_dir / "summary.json").read_text(encoding="utf-8"))
    return html, summary


def test_every_number_in_the_demo_report_html_comes_from_its_finding(report):
    html, summary = report
    assert 'data-finding="target.redis_hit_ratio"' in html
    p = _Cells()
    p.feed(html)
    shown = sum(len(_numbers(t)) for _r, t in p.out)
    assert shown > 300                      # the check sees the whole document
    errors = provenance_errors(html, summary)
    assert not errors, errors[:20]


def _row(html: str, fid: str) -> tuple[int, int]:
    start = html.index(f'<tr data-finding="{fid}">')
    return start, html.index("</tr>", start)


def test_a_hand_edited_number_fails_the_check(report):
    html, summary = report
    a, b = _row(html, "target.redis_hit_ratio")
    row = html[a:b]
    value = summary["sections"]["targets"][0]["display"]["value"]       # e.g. "93.2%"
    assert summary["sections"]["targets"][0]["id"] == "target.redis_hit_ratio" and value in row
    tokens = _tokens(summary)["target.redis_hit_ratio"]
    num = _numbers(value)[0]
    edited = next(f"{float(num) + d:.1f}" for d in (0.3, 0.4, 0.6, 0.7, 1.3)
                  if f"{float(num) + d:.1f}" not in tokens)
    bad = html[:a] + row.replace(value, value.replace(num, edited), 1) + html[b:]
    errors = provenance_errors(bad, summary)
    assert errors and edited in errors[0] and "target.redis_hit_ratio" in errors[0]


def test_a_number_moved_from_another_finding_fails_the_check(report):
    """The old substring test passed this: the number IS in summary.json, in another finding."""
    html, summary = report
    by = {f["id"]: f for f in summary["sections"]["targets"]}
    other = by["target.postgresql_buffer_cache_hit_ratio"]["display"]["value"]
    mine = by["target.redis_hit_ratio"]["display"]["value"]
    assert _numbers(other)[0] not in _tokens(summary)["target.redis_hit_ratio"]
    a, b = _row(html, "target.redis_hit_ratio")
    bad = html[:a] + html[a:b].replace(mine, other, 1) + html[b:]
    assert other[:-1] in json.dumps(summary)          # a substring test would pass it
    assert provenance_errors(bad, summary)


def test_a_number_outside_any_finding_fails_the_check(report):
    html, summary = report
    bad = html.replace("</main>", "<p>Capacity is fine for 417 more days.</p></main>")
    assert any("'417'" in e and "names no finding" in e for e in provenance_errors(bad, summary))
