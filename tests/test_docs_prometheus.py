"""docs/prometheus.md: every example runs (YAML sections through their parsers, the Python block
executed and its stated results checked), and the step table matches choose_step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "prometheus.md"


def _blocks(kind: str) -> list[str]:
    return [b for k, b in re.findall(r"^```(\w*)\n(.*?)^```", DOC.read_text(), re.S | re.M)
            if k == kind]


def test_yaml_examples_are_accepted_by_their_parsers(tmp_path):
    from capplan.analysis.runway import parse_capacity
    from capplan.analysis.targets import parse_targets
    from capplan.analysis.workers import parse_worker_pools
    from capplan.collect.exports import _check_entry
    from capplan.collect.promql import _check_cfg, parse_queries

    seen = set()
    for body in _blocks("yaml"):
        doc = yaml.safe_load(body)
        if "prometheus" in doc:
            cfg = _check_cfg(doc["prometheus"])
            assert parse_queries(cfg.get("queries"))
            seen.add("prometheus")
        if "capacity" in doc:
            parse_capacity(doc["capacity"])
            seen.add("capacity")
        if "targets" in doc:
            parse_targets(doc["targets"], path="docs")
        if "files" in doc:
            for i, e in enumerate(doc["files"]):
                _check_entry(e, f"files[{i}]")
            seen.add("files")
        if "worker_pools" in doc:
            assert parse_worker_pools(doc["worker_pools"])
            seen.add("worker_pools")
    assert seen == {"prometheus", "capacity", "files", "worker_pools"}


def test_python_example_runs_and_says_what_the_page_says():
    (code,) = _blocks("python")
    ns: dict = {}
    exec(compile(code, str(DOC), "exec"), ns)   # noqa: S102 - our own documentation
    q, h = ns["q"], ns["h"]
    assert (q.value, q.lower, q.upper) == (pytest.approx(0.25), 0.1, 0.25)
    assert "(0.1, 0.25]" in q.precision_note()
    ex, approx = h.fraction_below(0.25, ns["b"]), h.fraction_below(0.3, ns["b"])
    assert ex.exact and ex.value == 0.95
    assert not approx.exact and (approx.lower, approx.upper) == (0.95, 0.99)
    assert approx.value == pytest.approx(0.958)


def test_step_table_matches_choose_step():
    from capplan.collect.prometheus import choose_step

    rows = re.findall(r"^\| ([\d.]+) days?[^|]*\| (\d+) (s|min|h) \| ([\d,]+) \|$", DOC.read_text(),
                      re.M)
    assert len(rows) == 6
    for days, step, unit, points in rows:
        step_s = int(step) * {"s": 1, "min": 60, "h": 3600}[unit]
        window = float(days) * 86400
        assert choose_step(0, window) == step_s, days
        assert int(window // step_s) + 1 == int(points.replace(",", "")), days


def test_sh_example_is_a_real_command():
    from capplan.cli import build_parser

    (sh,) = _blocks("sh")
    line = next(l for l in sh.splitlines() if l.startswith("capplan "))
    args = build_parser().parse_args(line.split()[1:])
    assert (ROOT / args.params).is_file()
