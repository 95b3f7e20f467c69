"""JupyterLab: `make lab` serves the notebooks; headless Chromium runs 01 then 04 and the report's
figures load; the notebook helpers (missing inputs, what-if re-run, report display)."""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_serves_the_notebooks(tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    args = (f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token} "
            f"--ServerApp.port_retries=0")
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"), HOME=os.environ.get("HOME", str(tmp_path)))
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        body, deadline = None, time.time() + 120
        while time.time() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}",
                                            timeout=5) as r:
                    body = json.load(r)
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(proc.stdout.read().decode()[-2000:])
                time.sleep(0.5)
        assert body is not None, "JupyterLab did not answer within 120 s"
        names = {c["name"] for c in body["content"]}
        assert {"01-collect.ipynb", "04-report.ipynb"} <= names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/kernelspecs?token={token}",
                                    timeout=5) as r:
            specs = json.load(r)
        assert "python3" in specs["kernelspecs"]
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=5)
            raise AssertionError("the API answered without the token")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass  # already gone
        proc.wait(timeout=30)


# --- the notebooks in JupyterLab: headless Chromium drives 01-collect then 04-report ----------

def _start_lab(root_dir: Path, tmp_path: Path):
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"), CAPPLAN_LAB_DIR=str(tmp_path / "lab"))
    env.pop("CAPPLAN_PROJECT_DIR", None)
    jupyter = Path(sys.executable).parent / "jupyter"
    proc = subprocess.Popen(
        [str(jupyter), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0",
         f"--ServerApp.root_dir={root_dir}", "--allow-root",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=root_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5)
            return proc, port, token
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read().decode()[-2000:])
            time.sleep(0.5)
    raise AssertionError("JupyterLab did not answer within 120 s")


_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def _run_all(ctx, base: str, name: str, timeout_s: float = 240):
    """A fresh page (workspace reset) on one notebook: run all its cells, wait until every code
    cell has run; returns the page."""
    page = ctx.new_page()
    page.goto(f"{base}/lab/tree/{name}?reset")
    page.wait_for_selector(f"{_PANEL} .jp-CodeCell", timeout=120_000)
    state = ("() => { const s = document.querySelector('.jp-Notebook-ExecutionIndicator');"
             " const k = document.querySelector('" + _PANEL + " .jp-KernelName');"
             " return (s ? s.getAttribute('data-status') : '') + '|' + (k ? k.textContent : ''); }")
    done = ("() => { const p = [...document.querySelectorAll('" + _PANEL + " .jp-CodeCell "
            ".jp-InputPrompt')]; return p.length > 0 && p.every(e => /\\[\\d+\\]/.test(e.textContent)); }")
    dialog = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
    deadline = time.time() + 120
    while True:   # a started, idle python3 kernel and no dialog (Lab may ask "Select Kernel")
        if dialog.count():
            dialog.first.click()
        status, _, kernel = page.evaluate(state).partition("|")
        if status == "idle" and "capplan" in kernel and not dialog.count():
            break
        assert time.time() < deadline, f"{name}: no idle kernel after 120 s ({status}, {kernel})"
        page.wait_for_timeout(500)
    page.wait_for_timeout(500)
    page.locator(f"{_PANEL} .jp-Notebook").first.click()
    page.keyboard.press("Escape")
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    deadline = time.time() + timeout_s
    while not page.evaluate(done):
        assert not dialog.count(), f"{name}: a dialog interrupted the run"
        assert time.time() < deadline, f"{name}: cells still running after {timeout_s:g} s"
        page.wait_for_timeout(1000)
    return page


def test_lab_runs_01_then_04_and_the_report_figures_load(tmp_path):
    from playwright.sync_api import sync_playwright

    project = tmp_path / "project"
    shutil.copytree(ROOT / "notebooks", project / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (project / "params").mkdir()
    proc, port, token = _start_lab(project / "notebooks", tmp_path)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            try:
                ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
                login = ctx.new_page()
                login.goto(f"http://127.0.0.1:{port}/lab?token={token}")   # sets the cookie
                login.close()
                base = f"http://127.0.0.1:{port}"
                page = _run_all(ctx, base, "01-collect.ipynb")
                errors = page.locator(f"{_PANEL} .jp-OutputArea-output[data-mime-type="
                                      "'application/vnd.jupyter.stderr']").all_inner_texts()
                assert not any("Traceback" in e or "Error" in e for e in errors), errors
                page.close()
                page = _run_all(ctx, base, "04-report.ipynb")
                page.wait_for_selector(f"{_PANEL} .jp-OutputArea-output img", timeout=60_000)
                page.locator(f"{_PANEL} .jp-OutputArea-output img").first.scroll_into_view_if_needed()
                page.wait_for_timeout(1000)
                imgs = page.evaluate(
                    f"() => [...document.querySelectorAll('{_PANEL} .jp-OutputArea-output img')]"
                    ".map(i => ({w: i.naturalWidth, complete: i.complete, src: i.src.slice(0, 30)}))")
                page.screenshot(path=str(tmp_path / "lab-04-report.png"))
            finally:
                browser.close()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
    assert (tmp_path / "lab-04-report.png").stat().st_size > 10_000
    # with 01 and 04 run, the document has the latency and SLO figures; every one is in place
    links = (tmp_path / "lab" / "report.md").read_text().count("](figures/")
    assert links >= 2 and len(imgs) == links, imgs
    assert all(i["complete"] and i["w"] > 0 for i in imgs), imgs
    assert (tmp_path / "lab" / "report.html").is_file()   # CAPPLAN_LAB_DIR: not the checkout


# --- notebook helpers: missing inputs, what-if re-run, report display --------------------------

def test_02_growth_opened_first_says_run_01_collect(tmp_path, monkeypatch):
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    monkeypatch.setenv("CAPPLAN_LAB_DIR", str(tmp_path / "lab"))
    try:
        pm.execute_notebook(str(ROOT / "notebooks" / "02-growth.ipynb"), str(tmp_path / "out.ipynb"),
                            kernel_name="python3", progress_bar=False, cwd=str(tmp_path),
                            execution_timeout=120)
    except PapermillExecutionError as exc:
        assert exc.ename == "InsufficientData" and "run 01-collect first" in str(exc.evalue) \
            or "run 01-collect first" in "".join(exc.traceback), exc.evalue
    else:
        raise AssertionError("02-growth ran on an empty store")


def test_rerun_capacity_changes_one_entry_and_nothing_of_the_run(demo_run):
    import yaml

    from capplan.errors import ConfigError
    from capplan.runner import pipeline

    params = yaml.safe_load((ROOT / "params" / "demo.yaml").read_text())
    run_dir = demo_run.run_dir
    before = (run_dir / "findings" / "02-growth.json").read_bytes()
    out = pipeline.rerun_capacity("PostgreSQL database size", capacity=params["capacity"],
                                  run_dir=run_dir, horizon_days=30, limit=2 * 2**30)
    assert list(out.table["resource"]) == ["PostgreSQL database size"]
    f = out.findings[0]
    assert f.extra["limit"] == 2 * 2**30 and b"68719476736" in before   # params said 64 GiB
    assert out.figures and Path(out.figures[0]).is_file() and "/whatif/" in out.figures[0]
    assert (run_dir / "findings" / "02-growth.json").read_bytes() == before
    with pytest.raises(ConfigError, match="no capacity entry named"):
        pipeline.rerun_capacity("Disk", capacity=params["capacity"], run_dir=run_dir)


def test_report_display_embeds_every_figure(demo_run):
    from IPython.display import Image, Markdown

    from capplan.runner import pipeline

    md = demo_run.run_dir / "report.md"
    outcome = type("O", (), {"markdown": md})()
    parts = pipeline.report_display(outcome)
    links = md.read_text().count("](figures/")
    assert links >= 5 and sum(isinstance(p, Image) for p in parts) == links
    assert all(isinstance(p, (Image, Markdown)) for p in parts)
    assert all(p.data[:4] == b"\x89PNG" for p in parts if isinstance(p, Image))
