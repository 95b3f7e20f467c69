"""The runner end to end: real papermill runs of the real notebooks."""
import json
import os
from pathlib import Path

import pytest

from capplan.runner.run import prune_runs, run_report

ROOT = Path(__file__).resolve().parents[1]


def test_demo_run_publishes_atomically_and_points_latest(demo_run):
    d = demo_run.run_dir
    assert demo_run.status == "ok", demo_run.notebooks
    latest = d.parent / "latest"
    assert latest.is_symlink() and os.readlink(latest) == d.name
    assert not list(d.parent.glob(".*.partial")), "no partial folder left behind"
    for name in ("01-collect.ipynb", "02-growth.ipynb", "03-scaling.ipynb", "04-report.ipynb",
                 "report.html", "report.md", "summary.json", "manifest.json", "run.log"):
        assert (d / name).is_file(), name
    assert list((d / "figures").glob("*.png"))


def test_manifest_records_params_revision_versions_and_timings(demo_run):
    m = json.loads((demo_run.run_dir / "manifest.json").read_text())
    assert m["status"] == "ok" and m["params"]["mode"] == "demo"
    assert {"papermill", "pandas", "capplan", "python"} <= set(m["versions"])
    assert [n["notebook"] for n in m["notebooks"]][0] == "01-collect.ipynb"
    assert all(n["duration_s"] > 0 for n in m["notebooks"])


def test_executed_notebooks_carry_no_absolute_paths_or_environment(demo_run):
    for nb in demo_run.run_dir.glob("*.ipynb"):
        meta = json.loads(nb.read_text())["metadata"]["papermill"]
        assert "environment_variables" not in meta
        assert not meta["input_path"].startswith("/") and not meta["output_path"].startswith("/")


def test_summary_has_runway_with_intervals_and_a_status_for_every_target(demo_run):
    import yaml

    s = json.loads((demo_run.run_dir / "summary.json").read_text())
    assert s["schema_version"] == 1 and s["synthetic"] is True
    runway = {f["metric"]: f for f in s["sections"]["runway"]}
    for metric in ("redis_used_memory_bytes", "pg_client_backends_total", "http_requests_per_second"):
        f = runway[metric]
        assert f["n"] > 1000 and f["window"][0] and f["source"]
        assert f["extra"]["limit"] > 0
        x = f["extra"]
        if f["status"] == "crosses":
            # the late end may lie beyond the horizon (null): the report says "after <end>"
            assert x["crossing_lo"] <= x["crossing"]
            assert x["crossing_hi"] is None or x["crossing"] <= x["crossing_hi"]
            assert "(" in f["display"]["crossing"]
        assert 0 <= x["p_cross_within_horizon"] <= 1
        assert x["backtest"]["coverage95"] is not None
    # the demo limits come from the data: maxmemory 256 MiB, usable connections 97
    assert runway["redis_used_memory_bytes"]["extra"]["limit"] == 256 * 2 ** 20
    assert runway["pg_client_backends_total"]["extra"]["limit"] == 97
    params = yaml.safe_load((ROOT / "params" / "demo.yaml").read_text())
    statuses = {f["label"]: f["status"] for f in s["sections"]["targets"]}
    assert set(statuses) == {t["name"] for t in params["targets"]}
    assert all(v in ("meets", "misses", "at risk", "insufficient evidence") for v in statuses.values())


def test_failed_run_keeps_error_notebook_and_leaves_latest_alone(demo_run, tmp_path):
    out = demo_run.run_dir.parent.parent
    before = os.readlink(demo_run.run_dir.parent / "latest")
    bad = tmp_path / "demo.yaml"   # same name, so it runs into the same outputs/demo folder
    garbage = tmp_path / "results.json"   # exists (checked before any kernel), but unreadable
    garbage.write_text("not a load test\n")
    bad.write_text((ROOT / "params" / "demo.yaml").read_text().replace(
        "loadtest_file: demo", f"loadtest_file: {garbage}"))
    res = run_report(bad, outputs=out, cell_timeout_s=120)
    assert res.status == "failed" and res.exit_code == 1
    assert os.readlink(demo_run.run_dir.parent / "latest") == before
    failed = [n for n in res.notebooks if n["status"] == "failed"]
    assert failed and failed[0]["notebook"] == "03-scaling.ipynb"
    nb = json.loads((res.run_dir / "03-scaling.ipynb").read_text())
    assert nb["metadata"]["papermill"]["exception"] is True
    assert json.loads((res.run_dir / "manifest.json").read_text())["status"] == "failed"
    assert (demo_run.run_dir / "report.html").is_file(), "previous good report untouched"


def test_prune_keeps_newest_and_latest(tmp_path):
    name_dir = tmp_path / "svc"
    for rid in ("20260101T000000Z-aaaa", "20260102T000000Z-bbbb", "20260103T000000Z-cccc"):
        (name_dir / rid).mkdir(parents=True)
        (name_dir / rid / ".capplan-run").write_text("{}")
    os.symlink("20260101T000000Z-aaaa", name_dir / "latest")
    removed = prune_runs(name_dir, keep=1)
    assert [p.name for p in removed] == ["20260102T000000Z-bbbb"]
    assert (name_dir / "20260101T000000Z-aaaa").exists() and (name_dir / "20260103T000000Z-cccc").exists()


def test_a_second_run_of_the_same_params_waits_then_fails_with_the_lock_message(tmp_path):
    from capplan.errors import LockBusy
    from capplan.runner.run import RunLock

    name_dir = tmp_path / "demo"
    name_dir.mkdir()
    with RunLock(name_dir):
        with pytest.raises(LockBusy) as exc:
            run_report(ROOT / "params" / "demo.yaml", outputs=tmp_path, wait_s=0.5)
    assert "holds the lock" in str(exc.value) and f"pid {os.getpid()}" in str(exc.value)
    assert "--wait" in str(exc.value)
    assert [p.name for p in name_dir.iterdir()] == [".lock"], "nothing was run"


def test_run_timeout_stops_the_pipeline_and_fails(tmp_path):
    res = run_report(ROOT / "params" / "demo.yaml", outputs=tmp_path, run_timeout_s=1.5)
    assert res.status == "failed"
    assert any("timeout" in (n["error"] or "").lower() for n in res.notebooks), res.notebooks
    assert not (tmp_path / "demo" / "latest").exists()


def test_scrub_notebook_masks_secrets_and_keeps_valid_json(tmp_path):
    from capplan.runner.run import scrub_notebook

    nb = {"metadata": {"papermill": {"input_path": "/home/alice/nb.ipynb", "output_path": "/x/o.ipynb",
                                     "environment_variables": {"PGPASSWORD": "Lit3ral"}}},
          "cells": [{"outputs": [{"text": "redis://:Sekr3t@h:6379/0 and host=h password=abc"},
                                 {"text": "token Lit3ral here"}]}]}
    p = tmp_path / "nb.ipynb"
    p.write_text(json.dumps(nb))
    scrub_notebook(p, secret_values=("Lit3ral",))
    text = p.read_text()
    out = json.loads(text)  # still valid JSON
    assert "Sekr3t" not in text and "abc" not in text and "Lit3ral" not in text
    assert "alice" not in text and "environment_variables" not in text
    assert out["cells"][0]["outputs"][1]["text"] == "token *** here"
