"""Each notebook runs top to bottom with its own defaults, as in JupyterLab (no params injected)."""
import json
import os

import papermill as pm

from capplan.runner.params import PIPELINE, notebooks_dir


def test_notebooks_run_in_order_with_their_defaults(tmp_path, monkeypatch):
    lab = tmp_path / "lab"
    monkeypatch.setenv("CAPPLAN_LAB_DIR", str(lab))   # the kernels inherit it
    for nb in PIPELINE:
        pm.execute_notebook(str(notebooks_dir() / f"{nb}.ipynb"), str(tmp_path / f"{nb}.ipynb"),
                            kernel_name="python3", progress_bar=False, execution_timeout=300,
                            cwd=str(tmp_path))
    assert (lab / "report.html").is_file() and (lab / "metrics.sqlite").is_file()
    summary = json.loads((lab / "summary.json").read_text())
    assert summary["synthetic"] is True
    assert len(summary["sections"]["runway"]) == 4 and len(summary["sections"]["targets"]) == 4
    assert summary["sections"]["scaling"], "the default load test (recorded sweep) was fitted"
    assert not os.path.exists(notebooks_dir().parent / "outputs" / "_lab" / "summary.json.tmp")
