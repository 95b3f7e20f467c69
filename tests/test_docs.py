"""The docs' examples are well-formed: YAML parses, commands name existing verbs, options and
files, crontab lines have five valid time fields, systemd units use existing options."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from capplan.cli import build_parser
from capplan.runner.fleet import load_fleet

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))

# Options used by the units, as documented in systemd.unit(5), systemd.service(5),
# systemd.exec(5), systemd.kill(5) and systemd.timer(5); only the fallback when
# systemd-analyze is not installed.
SYSTEMD_KEYS = {
    "Unit": {"Description", "Documentation", "Wants", "Requires", "After", "Before", "OnFailure",
             "ConditionPathExists"},
    "Service": {"Type", "User", "Group", "WorkingDirectory", "Environment", "EnvironmentFile",
                "ExecStart", "ExecStartPre", "SuccessExitStatus", "TimeoutStartSec",
                "TimeoutStopSec", "Nice", "IOSchedulingClass", "KillMode", "RuntimeMaxSec"},
    "Timer": {"OnCalendar", "Persistent", "RandomizedDelaySec", "AccuracySec", "OnBootSec",
              "Unit"},
    "Install": {"WantedBy", "RequiredBy", "Alias"},
}


def blocks(path: Path) -> list[tuple[str, str]]:
    """(info string, body) of every fenced code block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", path.read_text(encoding="utf-8"), re.S | re.M)


def all_blocks(kind: str) -> list[tuple[Path, str]]:
    return [(p, body) for p in DOCS for info, body in blocks(p) if info == kind]


def check_capplan_command(cmd: str) -> None:
    """Parse a capplan command line with the real CLI parser; params files must exist."""
    argv = shlex.split(cmd, comments=True)
    i = next(k for k, a in enumerate(argv) if a.endswith("capplan") or a == "capplan")
    if argv[i] in ("-m",):
        i += 1
    argv = argv[i + 1:]
    for stop in (">>", ">", "2>&1", "|", "&&"):
        if stop in argv:
            argv = argv[:argv.index(stop)]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"not a valid capplan command: {cmd!r}") from exc
    params = getattr(args, "params", None)
    if params:
        assert (ROOT / params).is_file(), f"{cmd!r}: no params file {params}"


def capplan_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines()
            if re.search(r"(^|[\s/])capplan\s+\w", ln) and not ln.strip().startswith("#")]


def test_docs_exist_and_have_examples():
    names = {p.name for p in DOCS}
    assert {"scheduling.md", "fleet.md", "alerts.md"} <= names
    s = (ROOT / "docs" / "scheduling.md").read_text()
    for code, word in (("0", "success"), ("1", "failed"), ("2", "bad params"), ("3", "degraded")):
        assert re.search(rf"^\| {code} \| [^|]*{word}", s, re.M), code
    kinds = {info for info, _ in blocks(ROOT / "docs" / "scheduling.md")}
    assert {"crontab", "ini", "yaml", "sh"} <= kinds


def test_yaml_blocks_parse_and_workflow_is_well_formed():
    found_workflow = False
    for path, body in all_blocks("yaml"):
        doc = yaml.safe_load(body)
        assert isinstance(doc, dict), path
        if "jobs" in doc:
            found_workflow = True
            on = doc.get("on", doc.get(True))          # YAML 1.1 reads a bare `on` as true
            assert on and ("schedule" in on or "workflow_dispatch" in on)
            for cron in on.get("schedule", []):
                assert len(cron["cron"].split()) == 5
            for job in doc["jobs"].values():
                assert job["runs-on"] and job["steps"]
                for step in job["steps"]:
                    assert ("uses" in step) != ("run" in step), step
                    if "uses" in step:
                        assert re.match(r"^[\w.-]+/[\w.-]+@v\d+$", step["uses"]), step["uses"]
                    for cmd in capplan_lines(step.get("run", "")):
                        check_capplan_command(cmd)
                uploads = [s for s in job["steps"] if "upload-artifact" in s.get("uses", "")]
                assert uploads and uploads[0]["if"] == "always()"
                assert uploads[0]["with"]["path"].startswith("outputs/")
    assert found_workflow


def test_fleet_params_example_loads(tmp_path):
    for path, body in all_blocks("yaml"):
        doc = yaml.safe_load(body)
        if "services" in doc:
            p = tmp_path / "fleet.yaml"
            p.write_text(body)
            spec = load_fleet(p)
            assert spec.services and spec.discover


def test_crontab_lines_call_existing_commands():
    lines = [ln for _p, body in all_blocks("crontab") for ln in body.splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines
    ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
    for ln in lines:
        fields = ln.split(None, 5)
        assert len(fields) == 6, ln
        for f, (lo, hi) in zip(fields[:5], ranges):
            for part in f.split(","):
                base = part.split("/")[0]
                if base != "*":
                    for v in base.split("-"):
                        assert lo <= int(v) <= hi, (ln, f)
        cmd = fields[5]
        m = re.match(r"cd (\S+) && (.*)", cmd)
        assert m, "the crontab command should cd into the checkout first"
        exe = m.group(2).split()[0]
        assert exe == ".venv/bin/capplan"           # the console script pyproject installs
        assert 'capplan = "capplan.cli:main"' in (ROOT / "pyproject.toml").read_text()
        check_capplan_command(m.group(2))


def _units() -> dict[str, str]:
    out = {}
    for _p, body in all_blocks("ini"):
        first = body.splitlines()[0]
        assert first.startswith("# file: "), "each unit block names its file on the first line"
        out[first.split(": ", 1)[1].strip()] = body
    return out


def test_systemd_units_use_existing_options():
    units = _units()
    assert set(units) == {"capplan-report.service", "capplan-report.timer"}
    for name, body in units.items():
        cp = configparser.ConfigParser(strict=True, interpolation=None, comment_prefixes=("#", ";"))
        cp.optionxform = str
        cp.read_string(body)
        for section in cp.sections():
            assert section in SYSTEMD_KEYS, (name, section)
            unknown = set(cp[section]) - SYSTEMD_KEYS[section]
            assert not unknown, (name, section, unknown)
        if name.endswith(".service"):
            check_capplan_command(cp["Service"]["ExecStart"])
            assert int(cp["Service"]["SuccessExitStatus"]) == 3


def test_systemd_analyze_verify(tmp_path):
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.fail("systemd-analyze not found (package systemd); it checks the unit files")
    venv_capplan = ROOT / ".venv" / "bin" / "capplan"
    paths = []
    for name, body in _units().items():
        body = body.replace("/srv/capplan/.venv/bin/capplan", str(venv_capplan)) \
            .replace("/srv/capplan", str(ROOT)).replace("User=capplan", "User=root")
        (tmp_path / name).write_text(body)
        paths.append(str(tmp_path / name))
    res = subprocess.run([exe, "verify", "--man=no", *paths], capture_output=True, text=True,
                         timeout=60)
    text = res.stdout + res.stderr
    assert not re.search(r"Unknown (key|section)|Failed to|Invalid|bad-setting", text), text


def test_shell_examples_name_existing_verbs_and_options():
    cmds = [c for _p, body in all_blocks("sh") for c in capplan_lines(body)]
    assert any(" fleet " in c for c in cmds) and any(" alerts " in c for c in cmds)
    for c in cmds:
        check_capplan_command(c)
