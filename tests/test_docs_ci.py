"""docs/ci.md: its GitHub Actions and GitLab CI examples parse, the capplan commands they run
exist in the CLI (argv parsed by the real parser), the reports they upload are the ones the
commands write, and the GitLab job's shell steps really run here (bounded: 1 s pgbench runs
against the local PostgreSQL instead of 20 s against a service container)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from capplan.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ci.md"


def _yaml_blocks() -> list[dict]:
    bodies = re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)
    return [yaml.safe_load(b) for b in bodies]


def _github() -> dict:
    return next(d for d in _yaml_blocks() if isinstance(d, dict) and "jobs" in d)


def _gitlab() -> dict:
    return next(d for d in _yaml_blocks() if isinstance(d, dict) and "stages" in d)


def _capplan_argv(line: str) -> list[str] | None:
    if not re.search(r"(^|\s)capplan\s", line):
        return None
    argv = shlex.split(line, comments=True)
    return argv[argv.index("capplan") + 1:]


def _parse(argv: list[str]):
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:          # argparse: unknown verb or option
        raise AssertionError(f"not a valid capplan command: {argv}") from exc


def test_the_yaml_blocks_parse_and_there_is_one_example_per_ci_system():
    docs = _yaml_blocks()
    assert all(isinstance(d, dict) for d in docs)
    assert _github()["jobs"] and _gitlab()["stages"]
    assert any("compare" in d for d in docs)          # the params section example


def test_github_workflow_runs_existing_commands_and_uploads_what_they_write():
    wf = _github()
    (job,) = wf["jobs"].values()
    assert job["runs-on"] and job["timeout-minutes"] <= 30
    assert job["services"]["postgres"]["image"].startswith("postgres:")
    runs = [s["run"] for s in job["steps"] if "run" in s]
    for s in job["steps"]:
        assert ("uses" in s) != ("run" in s), s
    cmds = [a for r in runs for ln in r.splitlines() if (a := _capplan_argv(ln)) is not None]
    assert cmds, "the workflow runs no capplan command"
    for argv in cmds:
        args = _parse(argv)
        assert args.verb == "compare" and args.junit and args.markdown
        upload = next(s for s in job["steps"] if "upload-artifact" in s.get("uses", ""))
        assert upload["if"] == "always()"
        paths = upload["with"]["path"].split()
        covered = lambda f: any(f == p or f.startswith(p.rstrip("/") + "/")  # noqa: E731
                                for p in paths)
        assert covered(args.junit) and covered(args.markdown)
        assert any(f"cat {args.markdown} >> \"$GITHUB_STEP_SUMMARY\"" in r for r in runs)
        assert any(args.candidate in r and "pgbench" in r for r in runs)
    bench = [ln for r in runs for ln in r.splitlines() if re.search(r"pgbench .*-T \d+", ln)]
    assert bench and all("timeout " in ln for ln in bench)   # bounded


def test_gitlab_job_runs_existing_commands_and_reports_their_junit():
    cfg = _gitlab()
    jobs = {k: v for k, v in cfg.items() if isinstance(v, dict) and "script" in v}
    (job,) = jobs.values()
    assert job["stage"] in cfg["stages"] and job["services"][0]["name"].startswith("postgres:")
    cmds = [a for ln in job["script"] if (a := _capplan_argv(ln)) is not None]
    assert cmds
    for argv in cmds:
        args = _parse(argv)
        assert args.verb == "compare"
        assert job["artifacts"]["reports"]["junit"] == args.junit
        assert any(args.markdown.startswith(p.rstrip("/") + "/") or args.markdown == p
                   for p in job["artifacts"]["paths"])
        assert job["artifacts"]["when"] == "always"


def test_the_gitlab_steps_really_run_bounded_against_the_local_postgres(pg_dsn, tmp_path):
    """The job's pgbench and capplan lines, run here: the baseline recorded with the same loop,
    then the candidate, then the compare line; its JUnit is read back."""
    import psycopg
    from junitparser import JUnitXml
    from psycopg.conninfo import conninfo_to_dict

    job = next(v for v in _gitlab().values() if isinstance(v, dict) and "script" in v)
    db = f"capplan_ci_{os.getpid()}"
    lines = [ln for ln in job["script"]
             if not ln.startswith(("apt-get", "pip ", "until "))]
    loop = next(ln for ln in lines if ln.startswith("for "))
    script = []
    for ln in lines:
        ln = re.sub(r"\bbench\b", db, ln).replace("for i in 1 2 3;", "for i in 1 2;")
        ln = ln.replace("-s 10", "-s 1").replace("-T 20", "-T 1").replace("-c 4 -j 2",
                                                                           "-c 2 -j 2")
        if ln.startswith("capplan "):
            ln = f"{shlex.quote(sys.executable)} -m {ln}"
        if ln.startswith("for "):       # record the stored baseline with the same command
            script.append(re.sub(r"\bbench\b", db, loop).replace("-s 10", "-s 1")
                          .replace("-T 20", "-T 1").replace("-c 4 -j 2", "-c 2 -j 2")
                          .replace("perf/candidate", "perf/baseline")
                          .replace("for i in 1 2 3;", "for i in 1 2;"))
        script.append(ln)
    d = conninfo_to_dict(pg_dsn)
    env = {**os.environ, "PGHOST": d.get("host", "127.0.0.1"), "PGPORT": str(d.get("port", 5432)),
           "PGUSER": d.get("user", "postgres")}
    try:
        for ln in script:
            res = subprocess.run(["bash", "-c", ln], cwd=tmp_path, env=env, capture_output=True,
                                 text=True, timeout=120)
            if "capplan" in ln:
                assert res.returncode in (0, 1, 3), res.stderr   # never 2: the input is usable
            else:
                assert res.returncode == 0, (ln, res.stderr)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{db}" with (force)')
    cases = [c for s in JUnitXml.fromfile(str(tmp_path / "outputs/compare/junit.xml")) for c in s]
    assert [c.name for c in cases] == ["throughput", "latency_mean", "latency_p50",
                                       "latency_p95", "latency_p99", "error_rate"]
    md = (tmp_path / "outputs/compare/compare.md").read_text()
    assert "| Metric | Baseline | Candidate |" in md
    runs = sorted((tmp_path / "perf" / "candidate").iterdir())
    assert len(runs) == 2 and len(list(runs[0].glob("pgbench_log.*"))) == 2   # one per thread
