"""The handoff document: structure, provenance of every number, honesty on small samples."""
import json
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from capplan.analysis.findings import Finding
from capplan.report.document import SECTION_TITLES, build_document
from capplan.report.render import to_html, to_markdown
from capplan.runner.run import run_report
from capplan.analysis.targets import evaluate_proportion, parse_targets

ROOT = Path(__file__).resolve().parents[1]


def test_report_md_has_every_section_in_order(demo_run):
    md = (demo_run.run_dir / "report.md").read_text()
    assert md.startswith("# Capacity handoff: Phase 2 (beta) → Phase 3 (general availability)")
    heads = [l[3:] for l in md.splitlines() if l.startswith("## ")]
    assert heads == list(SECTION_TITLES)
    assert "SYNTHETIC DEMO DATA" in md
    assert "| Metric | Baseline | Current | Target | Status | n | Spread | Data age |" in md


# provenance of every rendered number: tests/test_provenance.py (per finding, report.html)


def test_small_sample_is_insufficient_evidence_and_a_large_one_is_definite():
    (t,) = parse_targets([{"name": "Hit ratio", "metric": "redis_keyspace_hit_ratio", "min": 0.8}],
                         path="t.yaml")
    small, large = evaluate_proportion(27, 34, t), evaluate_proportion(27_000, 34_000, t)
    assert small.status == "insufficient evidence" and large.status == "misses"
    summary = {"sections": {"targets": [Finding(
        "target.hit", "targets", "Hit ratio", value=small.value, unit="ratio",
        interval=(small.lo, small.hi), n=small.n, status=small.status, detail=small.reason,
        extra={"display": {"target": "≥ 80%", "baseline": "n/a"}}).to_dict()]},
        "statements": [{"severity": small.status, "text": small.reason, "refs": ["target.hit"]}]}
    md = to_markdown(build_document(summary))
    assert "insufficient evidence" in md and "27/34" in md and "63.2" in md


def test_a_known_regression_is_named_in_the_executive_summary(demo_run, tmp_path):
    params = yaml.safe_load((ROOT / "params" / "demo.yaml").read_text())
    params.update(demo_latency_factor=1.3, previous_summary=str(demo_run.run_dir / "summary.json"),
                  from_phase="Phase 3 (general availability)", to_phase="Phase 4 (scale-out)")
    p = tmp_path / "demo-next.yaml"
    p.write_text(yaml.safe_dump(params))
    res = run_report(p, outputs=tmp_path / "out", cell_timeout_s=300)
    assert res.status == "ok", res.notebooks
    s = json.loads((res.run_dir / "summary.json").read_text())
    changes = {f["label"]: f for f in s["sections"]["changes"]}
    assert changes["API p95 latency"]["status"] == "worse"
    assert changes["Redis hit ratio"]["status"] != "worse"
    md = (res.run_dir / "report.md").read_text()
    summary_part = md.split("## What changed")[0]
    assert "Regression since Phase 3 (general availability): API p95 latency" in summary_part
    assert "| API p95 latency |" in md.split("## What changed")[1].split("## Current baseline")[0]


def test_html_is_self_contained_and_opens_in_headless_chromium(demo_run):
    html = (demo_run.run_dir / "report.html").read_text()
    assert "<script" not in html and 'src="figures/' not in html and "data:image/png;base64," in html
    assert 'name="viewport"' in html
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("chromium not installed: run `bash .ci/install-system-deps.sh` as root", pytrace=False)
    with tempfile.TemporaryDirectory() as prof:
        out = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={prof}", "--enable-logging=stderr", "--v=0",
             "--window-size=420,900", "--dump-dom", (demo_run.run_dir / "report.html").as_uri()],
            capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Capacity handoff" in out.stdout and "Executive summary" in out.stdout
    console_errors = [l for l in out.stderr.splitlines() if "CONSOLE" in l and "rror" in l]
    assert not console_errors, console_errors


def test_render_escapes_html_and_marks_statuses():
    html = to_html([("title", "<b>x</b>", None), ("table", ["Status"], [["misses"]], None)],
                   run_dir=".", title="t")
    assert "&lt;b&gt;x&lt;/b&gt;" in html and 'class="badge bad"' in html


def test_pdf_keeps_every_runway_column(demo_run):
    """The PDF used to drop the runway table's last two columns (landscape pages, wrapped cells)."""
    pypdf = pytest.importorskip("pypdf", reason="pip install -r requirements-dev.txt")
    pdf = demo_run.run_dir / "report.pdf"
    if not pdf.exists():
        pytest.fail("no report.pdf: install chromium (bash .ci/install-system-deps.sh)", pytrace=False)
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(str(pdf)).pages)
    part = " ".join(text.split("Capacity runway", 1)[1].split("Scaling headroom", 1)[0].split())
    for words in ("P(cross in horizon)", "Model", "Backtest 95% coverage"):
        assert words in part, words
    s = json.loads((demo_run.run_dir / "summary.json").read_text())
    for f in s["sections"]["runway"]:
        row = part.split(f["label"].split()[-1], 1)[1]
        assert f["display"]["coverage95"] in row[:400], f["label"]
