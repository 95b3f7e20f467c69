"""Fuzz suite, params (issue 10): ``load_params`` raises only ConfigError on any file.

Seeds are the shipped params files; mutations are those of the load-test fuzz (numbers, lines,
bytes, truncation), plus generated YAML documents of any shape.  Seeded and bounded.
"""
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from capplan.runner.params import load_params
from fuzzing import CASES, FUZZ, mutated, typed_only

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [p.read_bytes() for p in sorted((ROOT / "params").glob("*.yaml"))]

YAML_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10 ** 40), 10 ** 40), st.floats(),
              st.text(max_size=12)),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=12)
KEYS = st.sampled_from(["mode", "store", "seed", "demo_days", "sources", "capacity", "targets",
                        "grain", "horizon_days", "prometheus", "files", "worker_pools",
                        "loadtest_file", "load_multiplier", "service", "compare", "name"])


def _load(tmp_path_factory, data: bytes):
    p = tmp_path_factory.mktemp("fz") / "p.yaml"
    p.write_bytes(data)
    return typed_only(lambda: load_params(p), canary=None)


@settings(FUZZ, max_examples=700)
@given(data=st.sampled_from(SEEDS).flatmap(lambda s: mutated(s)))
def test_fuzz_mutated_params_files_raise_only_config_errors(tmp_path_factory, data):
    CASES["params mutated"] += 1
    _load(tmp_path_factory, data)


@settings(FUZZ, max_examples=500)
@given(doc=st.dictionaries(KEYS, YAML_VALUES, max_size=5))
def test_fuzz_generated_params_documents_raise_only_config_errors(tmp_path_factory, doc):
    CASES["params generated"] += 1
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        return
    _load(tmp_path_factory, text.encode("utf-8", errors="surrogatepass"))


def test_fuzz_params_case_count(request):
    from fuzzing import report

    if not CASES["params mutated"] or not CASES["params generated"]:
        pytest.skip("counts cover the whole module; run all of tests/test_fuzz_params.py")
    report(request, "params fuzz", ("params mutated", "params generated"), minimum=1000)
