"""Issue 17, item 3: the handoff's "What changed" carries the load-test comparison, with the
same verdicts as `capplan compare` on the same files."""
import json
from pathlib import Path

from capplan.analysis.compare import compare_loadtests
from capplan.cli import main

DATA = Path(__file__).resolve().parents[1] / "lib" / "capplan" / "data" / "demo_compare"


def test_demo_report_shows_the_load_test_comparison_with_the_cli_verdicts(demo_run, tmp_path, capsys):
    s = json.loads((demo_run.run_dir / "summary.json").read_text())
    lt = {f["metric"]: f for f in s["sections"]["changes"] if f["id"].startswith("change.loadtest.")}
    assert len(lt) == 6 and "throughput" in lt
    cmp = compare_loadtests(str(DATA / "baseline"), str(DATA / "candidate"), min_runs=2)
    cli = {f["metric"]: f["status"] for f in cmp.to_findings()}
    assert {m: f["status"] for m, f in lt.items()} == cli
    assert lt["throughput"]["status"] == "regressed"   # 3 runs each side, primary key dropped
    md = (demo_run.run_dir / "report.md").read_text()
    assert "Load test, baseline: demo:" in md and "| Throughput |" in md
    assert any("Load-test regression" in x["text"] for x in s["statements"])
    assert str(DATA) not in md and str(DATA) not in json.dumps(s), "sides named in words, no paths"
    code = main(["compare", str(DATA / "baseline"), str(DATA / "candidate"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert {m["metric"]: m["verdict"] for m in out["metrics"]} == cli
