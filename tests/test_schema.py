"""Issue 11: one typed params model, its JSON Schema, and the notebooks' defaults kept equal."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from capplan.errors import ConfigError
from capplan.runner.params import PIPELINE, RUNNER_KEYS, load_params, notebook_parameters
from capplan.runner.schema import ParamsModel, json_schema

ROOT = Path(__file__).resolve().parents[1]
PARAMS = sorted((ROOT / "params").glob("*.yaml"))
COMMITTED = ROOT / "docs" / "params.schema.json"


def test_capplan_schema_prints_a_valid_json_schema():
    out = subprocess.run([sys.executable, "-m", "capplan", "schema"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == json.loads(COMMITTED.read_text()), \
        "docs/params.schema.json is stale: run `capplan schema --out docs/params.schema.json`"


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.name)
def test_every_params_file_validates_against_the_schema_and_names_it(path):
    first = path.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../docs/params.schema.json"
    jsonschema.validate(yaml.safe_load(path.read_text()) or {}, json_schema())


def _schema_key(err: jsonschema.ValidationError) -> str:
    out = ""
    for part in err.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    if err.validator == "additionalProperties":
        extra = err.message.split("'")[1]
        out += ("." if out else "") + extra
    return out


@pytest.mark.parametrize("text,key", [
    ("mode: demo\nlookbak_days: 30\n", "lookbak_days"),
    ("capacity:\n  - {name: a, metric: m, limt: 3}\n", "capacity[0].limt"),
    ("targets:\n  - {name: a, metric: m, mn: 0.9}\n", "targets[0].mn"),
    ("mode: live\nsources:\n  - {source: redis, slowlg: true}\n", "sources[0].slowlg"),
])
def test_a_misspelled_key_is_rejected_by_schema_and_run_with_the_same_key_path(tmp_path, text, key):
    raw = yaml.safe_load(text)
    errors = list(jsonschema.Draft202012Validator(json_schema()).iter_errors(raw))
    schema_keys = {_schema_key(e) for e in errors}
    for e in errors:  # unions report per branch: look inside for the offending key
        for sub in e.context or ():
            schema_keys.add(_schema_key(sub))
    assert key in schema_keys, schema_keys
    p = tmp_path / "p.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_params(p)
    assert key in {e["key"] for e in exc.value.errors}
    assert "did you mean" in str(exc.value)


def test_the_model_knows_exactly_the_notebooks_parameters_with_the_same_defaults():
    declared = {}
    for nb in PIPELINE:
        declared.update(notebook_parameters(nb))
    fields = set(ParamsModel.model_fields) - {"name"}   # name: a runner key (the outputs folder)
    assert fields == set(declared) - RUNNER_KEYS
    model = ParamsModel()
    for k in sorted(fields):
        nb_default = ast.literal_eval(declared[k]["default"])
        from_nb = getattr(ParamsModel.model_validate({k: nb_default}), k)
        assert from_nb == getattr(model, k), f"{k}: notebook default differs from the model's"


def test_fleet_files_validate_against_the_fleet_schema():
    out = subprocess.run([sys.executable, "-m", "capplan", "schema", "--fleet"], capture_output=True,
                         text=True, timeout=60)
    schema = json.loads(out.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == json.loads((ROOT / "docs" / "fleet.schema.json").read_text())
    for path in sorted((ROOT / "params" / "fleets").glob("*.yaml")):
        assert path.read_text().splitlines()[0] == \
            "# yaml-language-server: $schema=../../docs/fleet.schema.json"
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
