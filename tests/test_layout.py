"""The fixed layout, the notebooks' house rules and the public surface."""
import json
import re
import subprocess
from pathlib import Path

import pytest

import capplan

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_top_level_layout():
    for name in ("requirements.txt", "notebooks", "lib/capplan", "params", "outputs", "tests",
                 "bench", "README.md", "Makefile", ".ci/run"):
        assert (ROOT / name).exists(), name
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "outputs/demo/x"],
                             capture_output=True, text=True)
    assert ignored.returncode == 0, "outputs/ must be git-ignored"


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make report" in readme
    ci = [l for l in (ROOT / ".ci/run").read_text().splitlines() if l and not l.startswith("#")]
    assert ci[-1].strip() == "make test"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_thin_stripped_and_have_one_parameters_cell(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    for c in code:
        src = "".join(c["source"])
        assert not c.get("outputs") and not c.get("execution_count"), "commit notebooks stripped"
        assert not re.search(r"^\s*(def|class)\s", src, re.M), "logic belongs in lib/"
        assert "sys.path" not in src
    from capplan.runner.params import notebook_parameters

    for name, spec in notebook_parameters(path.stem).items():
        assert spec["type"] not in ("None", ""), f"{name}: annotate its type"
        assert spec["help"], f"{name}: add a '# help' comment"


def test_public_all_matches_what_is_public():
    public = {n for n in dir(capplan) if not n.startswith("_") and not isinstance(
        getattr(capplan, n), type(capplan))}
    assert set(capplan.__all__) - {"__version__"} == public


def test_make_report_runs_the_demo_and_prints_report_html(tmp_path):
    out = subprocess.run(["make", "-s", "report", f"OUTPUTS={tmp_path}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    # not a TTY: one progress line per notebook and nothing else (no kernel transport warnings,
    # no shutdown-interrupt noise)
    lines = out.stderr.strip().splitlines()
    assert [ln.split()[2] for ln in lines] == ["01-collect", "02-growth", "03-scaling",
                                               "04-report"], lines
    assert all(re.match(r"capplan run: \S+\s+ok\s+[\d.]+ s \(elapsed \d+:\d\d\)$", ln)
               for ln in lines), lines
    html = Path(out.stdout.strip().splitlines()[-1])
    assert html.name == "report.html" and html.is_file()
    assert html.parent.parent == tmp_path / "demo"
    assert (tmp_path / "demo" / "latest").resolve() == html.parent.resolve()
