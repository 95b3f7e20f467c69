"""capplan as an installed package: a wheel (not editable) in a fresh venv runs a report.

The wheel is built from a copy of the sources (nothing is written into the checkout) and
installed with ``--no-deps`` into a new venv; that venv borrows the already installed
dependencies of the test environment through a ``.pth`` line, so the test needs no network and
stays fast.  The checkout's ``lib/`` is NOT on that venv's path: capplan, its notebooks and its
demo params must come from the wheel.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("lib", "notebooks", "params", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")


def _copy_sources(dest: Path) -> Path:
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.egg-info", ".ipynb_checkpoints"))
        else:
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = _copy_sources(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "--no-index", "-q", "-w", str(out), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    (whl,) = out.glob("capplan-*.whl")
    return whl


def test_wheel_carries_the_notebooks_demo_params_and_demo_sweep(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for nb in ("01-collect", "02-growth", "03-scaling", "04-report"):
        assert f"capplan/data/notebooks/{nb}.ipynb" in names
    assert "capplan/data/params/demo.yaml" in names
    assert "capplan/data/demo_pgbench_sweep.csv" in names
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/METADATA"))).decode()
    requires = [ln for ln in meta.splitlines() if ln.startswith("Requires-Dist:")]
    assert any(r.startswith("Requires-Dist: numpy<3,>=2.0") or "numpy>=2.0" in r for r in requires)
    base = [r for r in requires if "extra ==" not in r]
    for heavy in ("jupyterlab", "dask", "statsmodels", "nbconvert", "jinja2"):
        assert not any(heavy in r.lower() for r in base), f"{heavy} must not be a default dependency"


def test_requirements_txt_is_generated_from_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [ln for ln in (ROOT / "requirements.txt").read_text().splitlines()
             if ln and not ln.startswith("#")]
    assert lines == deps, "run `make requirements` after editing pyproject.toml"


def test_constraints_pin_every_dependency():
    pins = {ln.split("==")[0].lower().replace("_", "-")
            for ln in (ROOT / "constraints.txt").read_text().splitlines() if "==" in ln}
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + [r for extra in meta["optional-dependencies"].values()
                                   for r in extra if not r.startswith("capplan")]
    import re
    names = {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}
    assert names <= pins, f"not pinned in constraints.txt: {sorted(names - pins)}"


def test_installed_wheel_init_and_run_produce_a_report(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    # the test environment's dependencies, without its editable capplan (a .pth line adds the
    # folder; the .pth files inside it, such as the editable finder, are not processed)
    (site / "_capplan_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    res = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                          "--no-deps", "--no-index", str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CAPPLAN_PROJECT_DIR", "JUPYTER_PATH")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    capplan = str(venv / "bin" / "capplan")

    where = subprocess.run([str(py), "-c", "import capplan, sys; print(capplan.__file__); "
                            "print('/work' in ''.join(sys.path) and str(sys.path))"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    assert where.stdout.splitlines()[0].startswith(str(site)), where.stdout
    assert str(ROOT / "lib") not in where.stdout

    out = subprocess.run([capplan, "--version"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=60)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("version") \
        or __import__("capplan").__version__
    assert out.returncode == 0 and out.stdout.strip() == f"capplan {version}"

    proj = tmp_path / "myproject"
    out = subprocess.run([capplan, "init", str(proj)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (proj / "notebooks" / "01-collect.ipynb").read_bytes() == \
        (ROOT / "notebooks" / "01-collect.ipynb").read_bytes()

    out = subprocess.run([capplan, "run", "params/demo.yaml"], capture_output=True, text=True,
                         env=env, cwd=proj, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    html = Path(out.stdout.strip().splitlines()[-1])
    assert html.is_file() and html.name == "report.html"
    assert html.parent.parent == (proj / "outputs" / "demo").resolve()   # the project's outputs
    manifest = json.loads((html.parent / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["params_file"] == "params/demo.yaml"
    assert "IPKernelApp" not in out.stderr and "Traceback" not in out.stderr

    # without the project's notebooks, the wheel's own are used
    shutil.rmtree(proj / "notebooks")
    nbdir = subprocess.run([str(py), "-c", "from capplan.runner.params import notebooks_dir, "
                            "project_root; print(notebooks_dir(project_root('params/demo.yaml')))"],
                           capture_output=True, text=True, env=env, cwd=proj, check=True)
    assert nbdir.stdout.strip() == str(site / "capplan" / "data" / "notebooks")
