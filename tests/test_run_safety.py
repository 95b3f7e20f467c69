"""Issue 10, items 1, 2 and 4: the runner writes and deletes only what it made, and every failure
to write is an OutputError (exit 1) that leaves ``latest`` and earlier runs alone.

Full and read-only disks are real: a 12 MB tmpfs and a read-only bind mount, made inside a private
mount namespace (``unshare``) so nothing outside the test sees them.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from capplan.cli import main

ROOT = Path(__file__).resolve().parents[1]
CAPPLAN = [sys.executable, "-m", "capplan"]


def _capplan(*args, cwd=None, timeout=300):
    return subprocess.run([*CAPPLAN, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# --- item 1: the outputs name is validated --------------------------------------------------

@pytest.mark.parametrize("stem", ["...", "..", ".hidden", "a b", "latest"])
def test_keep_never_deletes_outside_the_run_history_for_odd_params_names(tmp_path, capsys, stem):
    scratch = tmp_path / "scratch"
    (scratch / "outputs" / "other-report").mkdir(parents=True)
    (scratch / "notes").mkdir()
    (scratch / "notes" / "keep.txt").write_text("mine")
    shutil.copy(ROOT / "params" / "demo.yaml", scratch / f"{stem}.yaml")
    before = _tree(tmp_path)
    code = main(["run", str(scratch / f"{stem}.yaml"), "--outputs", str(scratch / "outputs"),
                 "--keep", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--name" in err and "Traceback" not in err
    assert _tree(tmp_path) == before, "nothing created, nothing deleted"


def test_name_flag_gives_a_safe_name_to_an_odd_params_file(tmp_path):
    shutil.copy(ROOT / "params" / "demo.yaml", tmp_path / "...yaml")
    out = _capplan("run", str(tmp_path / "...yaml"), "--outputs", str(tmp_path / "out"),
                   "--name", "scratch-demo", "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "out" / "scratch-demo" / "latest" / "report.html").is_file()


# --- item 2: retention deletes only marked runs, and prunes abandoned partials ---------------------

def test_retention_deletes_only_folders_the_runner_marked(tmp_path):
    out = tmp_path / "outputs"
    name_dir = out / "demo"
    name_dir.mkdir(parents=True)
    (name_dir / "00_my_notes").mkdir()
    (name_dir / "00_my_notes" / "n.md").write_text("notes")
    (name_dir / "20200101T000000Z-abcd").mkdir()          # named like a run, not made by one
    (name_dir / "20200101T000000Z-abcd" / "x").write_text("x")
    dead = name_dir / ".20200102T000000Z-dead.partial"    # left by a killed run (pid gone)
    dead.mkdir()
    (dead / ".capplan-run").write_text(json.dumps({"run_id": "20200102T000000Z-dead",
                                                   "pid": 2 ** 22 + 7, "host": os.uname().nodename}))
    (dead / "big.bin").write_bytes(b"\0" * 1_000_000)
    foreign_partial = name_dir / ".20200103T000000Z-beef.partial"   # no mark: not ours
    foreign_partial.mkdir()
    older = name_dir / "20200104T000000Z-0bd0"                     # an earlier run of ours
    older.mkdir()
    (older / ".capplan-run").write_text("{}")
    r = _capplan("run", str(ROOT / "params" / "demo.yaml"), "--outputs", str(out),
                 "--keep", "1", "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    assert not older.exists(), "the older marked run is pruned"
    assert (name_dir / "00_my_notes" / "n.md").read_text() == "notes"
    assert (name_dir / "20200101T000000Z-abcd" / "x").exists()
    assert foreign_partial.exists()
    assert not dead.exists(), "an abandoned .partial of a dead run is pruned"
    runs = [p for p in name_dir.iterdir() if (p / ".capplan-run").is_file() and not p.is_symlink()]
    assert len(runs) == 1 and (name_dir / "latest").resolve() == runs[0].resolve()


# --- item 4: full, read-only and odd outputs ----------------------------------------------------

def _in_namespace(script: str, timeout=300) -> subprocess.CompletedProcess:
    """Run ``script`` (sh) in a private mount namespace (root: ``unshare -m``; else ``-rm``)."""
    if not shutil.which("unshare"):
        pytest.fail("these tests need util-linux 'unshare' to make a private tmpfs")
    flags = ["-m"] if os.geteuid() == 0 else ["-r", "-m"]
    return subprocess.run(["unshare", *flags, "sh", "-c", script], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("size_mb", [1, 2, 3])
def test_a_full_disk_gives_an_output_error_and_keeps_the_previous_report(tmp_path, size_mb):
    """The outputs disk fills while the runner writes the notebooks, the report and the manifest
    (the store lives elsewhere, so the notebooks themselves run): exit 1 with OutputError's
    message, no traceback, ``latest`` and the previous report untouched."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    params = tmp_path / "demo.yaml"
    params.write_text((ROOT / "params" / "demo.yaml").read_text().replace(
        "mode: demo", f"mode: demo\nstore: {tmp_path / 'store' / 'metrics.sqlite'}", 1))
    prev = "20200101T000000Z-beef"
    cmd = " ".join([*CAPPLAN, "run", str(params), "--outputs", f"{mnt}/out", "--quiet"])
    script = (f"mount -t tmpfs -o size={size_mb}m tmpfs {mnt} && "
              f"mkdir -p {mnt}/out/demo/{prev} && echo '{{}}' > {mnt}/out/demo/{prev}/.capplan-run && "
              f"echo '<html>previous</html>' > {mnt}/out/demo/{prev}/report.html && "
              f"ln -s {prev} {mnt}/out/demo/latest && "
              f"{cmd}; echo \"rc=$?\"; "
              f"echo \"latest_after=$(readlink {mnt}/out/demo/latest)\"; "
              f"grep -q previous {mnt}/out/demo/{prev}/report.html && echo previous_report_ok")
    r = _in_namespace(script)
    text = r.stdout + r.stderr
    assert "Traceback" not in text, text[-3000:]
    assert "rc=1" in text, text[-3000:]
    assert "the disk is full" in text and "how to fix" in text, text[-3000:]
    assert f"latest_after={prev}" in text, "latest must not move on a failed run"
    assert "previous_report_ok" in text


def test_a_read_only_outputs_folder_gives_an_output_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    cmd = " ".join([*CAPPLAN, "run", str(ROOT / "params" / "demo.yaml"), "--outputs", str(ro),
                    "--quiet"])
    r = _in_namespace(f"mount --bind {ro} {ro} && mount -o remount,ro,bind {ro} && {cmd}; "
                      "echo rc=$?")
    text = r.stdout + r.stderr
    assert "rc=1" in text and "Traceback" not in text, text[-3000:]
    assert "read-only" in text


def test_a_lock_that_is_a_directory_gives_an_output_error(tmp_path, capsys):
    (tmp_path / "out" / "demo" / ".lock").mkdir(parents=True)
    code = main(["run", str(ROOT / "params" / "demo.yaml"), "--outputs", str(tmp_path / "out"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and ".lock" in err, err


def test_a_lock_that_is_a_symlink_is_not_followed(tmp_path, capsys):
    target = tmp_path / "precious.txt"
    target.write_text("do not overwrite")
    (tmp_path / "out" / "demo").mkdir(parents=True)
    os.symlink(target, tmp_path / "out" / "demo" / ".lock")
    code = main(["run", str(ROOT / "params" / "demo.yaml"), "--outputs", str(tmp_path / "out"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "symbolic link" in err, err
    assert target.read_text() == "do not overwrite"


def test_a_name_folder_that_is_a_symlink_is_refused(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").mkdir()
    os.symlink(elsewhere, tmp_path / "out" / "demo")
    code = main(["run", str(ROOT / "params" / "demo.yaml"), "--outputs", str(tmp_path / "out"),
                 "--keep", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "symbolic link" in err, err
    assert list(elsewhere.iterdir()) == []
