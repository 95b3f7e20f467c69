"""The command line as a newcomer meets it: help, --version, init, horizons, usl hints, progress."""
import io
import json
import re
import sys
from pathlib import Path

import pytest

import capplan
from capplan.cli import build_parser, duration_seconds, horizon_steps, main
from capplan.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _verbs() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "verb")
    return sorted(sub.choices)


def _help(*argv) -> str:
    out = io.StringIO()
    with pytest.raises(SystemExit) as exc:
        sys_stdout, sys.stdout = sys.stdout, out
        try:
            main([*argv, "--help"])
        finally:
            sys.stdout = sys_stdout
    assert exc.value.code == 0
    return out.getvalue()


def test_top_level_help_is_for_users_and_formats():
    text = _help()
    assert "{'option_strings'" not in text and "%%" not in text
    assert "capplan init" in text and "capplan run params/demo.yaml" in text
    assert "95% range" in text          # the runway verb's help, with a real percent sign
    assert "thin layer" not in text     # not the developer docstring
    for verb in _verbs():
        assert re.search(rf"^\s+{verb}\s+\S", text, re.M), verb


@pytest.mark.parametrize("verb", _verbs())
def test_every_verb_has_a_description_and_clean_help(verb):
    sub = next(a for a in build_parser()._actions if a.dest == "verb").choices[verb]
    assert sub.description and len(sub.description) > 40, f"{verb}: write a description"
    text = _help(verb)
    assert "{'option_strings'" not in text and "%%" not in text and "%(" not in text


def test_run_help_lists_the_exit_codes():
    text = _help("run")
    for code, word in (("0", "written"), ("1", "failed"), ("2", "bad params"), ("3", "degraded")):
        assert re.search(rf"^\s+{code}\s+.*{word}", text, re.M), code
    assert "--quiet" in text


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"capplan {capplan.__version__}"


@pytest.mark.parametrize("text,seconds", [("7d", 7 * 86400), ("168h", 168 * 3600), ("2w", 14 * 86400),
                                          ("90min", 5400), ("30s", 30), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert duration_seconds(text, key="--horizon") == seconds


@pytest.mark.parametrize("bad", ["24", "0h", "-1d", "7 days", "1M", ""])
def test_bad_durations_say_how_to_write_one(bad):
    with pytest.raises(ConfigError, match="not a duration") as exc:
        duration_seconds(bad, key="--horizon")
    assert "7d" in exc.value.hint


def test_horizon_is_the_same_whatever_the_grain():
    assert horizon_steps("7d", "1h") == 168 == horizon_steps("168h", "1h")
    assert horizon_steps("7d", "6h") == 28
    assert horizon_steps("5h", "2h") == 3  # rounded up: the horizon is covered


def test_forecast_refuses_a_bare_number_with_a_hint(capsys):
    f = FIXTURES / "growth" / "growth_used_memory_irregular_growing.csv"
    assert main(["forecast", str(f), "--horizon", "24"]) == 2
    err = capsys.readouterr().err
    assert "not a duration" in err and "24h" in err and len(err.strip().splitlines()) == 1


def test_usl_on_one_pgbench_run_says_to_sweep(capsys):
    f = FIXTURES / "loadtest" / "pgbench_summary_pg15.txt"
    assert main(["usl", str(f)]) == 2
    err = capsys.readouterr().err
    assert "single run" in err and "capplan sweep" in err and "--n-col" not in err


def test_usl_reads_a_load_point_csv_without_column_flags(capsys):
    assert main(["usl", str(ROOT / "lib/capplan/data/demo_pgbench_sweep.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_levels"] >= 6


def test_init_writes_a_project_that_checks(tmp_path, capsys, monkeypatch):
    from capplan.runner.params import load_params, notebooks_dir, project_root

    proj = tmp_path / "proj"
    assert main(["init", str(proj)]) == 0
    files = {str(Path(p).relative_to(proj)) for p in capsys.readouterr().out.split()}
    assert {"params/demo.yaml", "params/services.yaml", "params/prometheus.yaml", ".gitignore",
            "outputs/.gitkeep", "notebooks/01-collect.ipynb", "notebooks/04-report.ipynb"} <= files
    assert "outputs/*" in (proj / ".gitignore").read_text()
    for name in ("demo", "services", "prometheus"):   # every starter params file is valid
        load_params(proj / "params" / f"{name}.yaml")
    services = (proj / "params" / "services.yaml").read_text()
    assert "# " in services and "REDIS_URL" in services and "password:" not in services.lower()
    # paths resolve against the project, wherever the command runs from
    monkeypatch.chdir(tmp_path)
    assert project_root(proj / "params" / "demo.yaml") == proj.resolve()
    assert notebooks_dir(project_root(proj / "params" / "demo.yaml")) == proj.resolve() / "notebooks"
    # a second init never overwrites
    assert main(["init", str(proj)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["init", str(proj), "--force"]) == 0


def test_project_root_of_a_loose_params_file_is_its_folder(tmp_path):
    from capplan.runner.params import project_root

    f = tmp_path / "loose" / "x.yaml"
    f.parent.mkdir()
    f.write_text("mode: demo\n")
    assert project_root(f) == f.parent.resolve()


def _db_exists(pg_dsn, name) -> bool:
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        return conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone() \
            is not None


def test_sweep_drops_the_database_it_created_unless_kept(pg_dsn, capsys):
    import secrets

    from capplan.loadtest.sweep import drop_pgbench_database

    name = f"capplan_sweep_cli_{secrets.token_hex(3)}"
    target = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": name}
    args = ["sweep", "--tool", "pgbench", "--levels", "1,2", "--duration", "1", "--scale", "1",
            "--host", "127.0.0.1", "--port", "5432", "--user", "postgres", "--dbname", name,
            "--json", "--no-progress"]
    try:
        assert main(args) == 0
        assert not _db_exists(pg_dsn, name), "created by the sweep: dropped by default"
        assert "dropped the sweep database" in capsys.readouterr().err
        assert main(args + ["--keep-db"]) == 0
        assert _db_exists(pg_dsn, name)
        assert main(args) == 0                 # it existed before: kept by default
        assert _db_exists(pg_dsn, name)
        assert main(args + ["--drop-db"]) == 0
        assert not _db_exists(pg_dsn, name)
    finally:
        drop_pgbench_database(target)
