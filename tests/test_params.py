import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from papermill.inspection import inspect_notebook

from capplan.errors import ConfigError
from capplan.runner.params import PIPELINE, RUNNER_KEYS, load_params

ROOT = Path(__file__).resolve().parents[1]
PARAMS = sorted((ROOT / "params").glob("*.yaml"))


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.name)
def test_every_params_file_matches_the_notebooks_parameters(path):
    declared = {}
    for nb in PIPELINE:
        declared.update(inspect_notebook(str(ROOT / "notebooks" / f"{nb}.ipynb")))
    raw = yaml.safe_load(path.read_text())
    unknown = set(raw) - set(declared)
    assert not unknown, f"{path.name}: keys no notebook declares: {unknown}"
    assert not set(raw) & RUNNER_KEYS
    load_params(path)  # types and secrets too


def _write(tmp_path, text, name="p.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_misspelled_key_names_key_file_and_suggestion(tmp_path):
    p = _write(tmp_path, "mode: demo\nlookbak_days: 30\n")
    with pytest.raises(ConfigError) as exc:
        load_params(p)
    msg = str(exc.value)
    assert "lookbak_days" in msg and str(p) in msg and "lookback_days" in msg
    assert "allowed keys" in msg


def test_wrong_type_is_refused(tmp_path):
    p = _write(tmp_path, "horizon_days: soon\n")
    with pytest.raises(ConfigError, match="horizon_days.*expected int"):
        load_params(p)


def test_inline_secrets_are_refused(tmp_path):
    p = _write(tmp_path, "sources:\n  - {source: postgres, name: app, password: hunter2}\n")
    with pytest.raises(ConfigError, match="secret"):
        load_params(p)
    p = _write(tmp_path, "sources:\n  - {source: redis, name: c, url: 'redis://u:hunter2@h:6379'}\n")
    with pytest.raises(ConfigError, match="inline password"):
        load_params(p)


def test_yaml_error_names_line(tmp_path):
    p = _write(tmp_path, "mode: demo\ncapacity: [\n  - x\n")
    with pytest.raises(ConfigError, match="line"):
        load_params(p)


def test_runner_keys_are_not_params(tmp_path):
    p = _write(tmp_path, "run_dir: /tmp/x\n")
    with pytest.raises(ConfigError, match="run_dir"):
        load_params(p)


def test_cli_run_with_misspelled_key_fails_fast_naming_key_and_file(tmp_path):
    p = _write(tmp_path, "mode: demo\nhorizon_dayz: 30\n", "bad.yaml")
    out = subprocess.run([sys.executable, "-m", "capplan", "run", str(p), "--outputs",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "horizon_dayz" in out.stderr and "bad.yaml" in out.stderr
    assert not (tmp_path / "out").exists(), "no run folder for bad params"


@pytest.mark.parametrize("nb", PIPELINE)
def test_fast_parameter_reader_agrees_with_papermill(nb):
    from capplan.runner.params import notebook_parameters

    ours = notebook_parameters(nb)
    theirs = inspect_notebook(str(ROOT / "notebooks" / f"{nb}.ipynb"))
    assert set(ours) == set(theirs)
    for k, v in theirs.items():
        assert ours[k]["type"] == v["inferred_type_name"], k
        assert ours[k]["help"] == v["help"], k


def test_bad_capacity_entry_and_target_fail_before_any_kernel(tmp_path):
    p = _write(tmp_path, "capacity:\n  - {name: Redis memory, metric: redis_used_memory_bytes}\n")
    with pytest.raises(ConfigError, match=r"capacity\[0\].*exactly one of 'limit'"):
        load_params(p)
    p = _write(tmp_path, "targets:\n  - {name: Hit ratio, metric: redis_keyspace_hit_ratio, mni: 0.8}\n")
    with pytest.raises(ConfigError, match=r"targets\[0\]"):
        load_params(p)
