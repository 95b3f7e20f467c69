"""Issue 10, items 3 and 6: hostile and wrong params are refused before any kernel starts.

Every case goes through the real command line (``capplan run``) and must exit 2 with one
message naming the file, write nothing (no outputs folder, no store file) and never show a
traceback or the secret it refused.
"""
import os
import time
from pathlib import Path

import pytest

from capplan.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEMO = (ROOT / "params" / "demo.yaml").read_text()


def _run(tmp_path, capsys, text: str | bytes, name="p.yaml", extra=()):
    p = tmp_path / name
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    out = tmp_path / "outputs"
    code = main(["run", str(p), "--outputs", str(out), "--quiet", *extra])
    err = capsys.readouterr().err
    return code, err, out


def _refused(tmp_path, capsys, text, *, secret=None, name="p.yaml", must=()):
    t0 = time.monotonic()
    code, err, out = _run(tmp_path, capsys, text, name=name)
    elapsed = time.monotonic() - t0
    assert code == 2, err
    assert "Traceback" not in err
    assert not out.exists(), "nothing may be written for refused params"
    if secret:
        assert secret not in err
    for m in must:
        assert m in err, err
    return err, elapsed


# --- item 6: bounded YAML -------------------------------------------------------------------

BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_yaml_anchor_bomb_is_refused_within_one_second(tmp_path, capsys):
    assert len(BOMB) < 600
    err, elapsed = _refused(tmp_path, capsys, BOMB, must=("alias",))
    assert elapsed < 1.0, f"took {elapsed:.2f} s"


@pytest.mark.parametrize("case,data", [
    ("non_utf8", b"mode: demo\nservice: caf\xe9\n"),
    ("utf16_bom", "mode: demo\n".encode("utf-16")),
    ("deep_nesting", ("x: " + "[" * 200 + "]" * 200 + "\n").encode()),
    ("five_thousand_digit_integer", ("seed: " + "9" * 5000 + "\n").encode()),
    ("bounds_empty", (DEMO.replace("    limit_metric: redis_maxmemory_bytes          # 0 would",
                                   "    bounds: []\n    limit_metric: redis_maxmemory_bytes  # 0 would")).encode()),
    ("huge_file", b"service: " + b"x" * 2_000_000 + b"\n"),
])
def test_unreadable_params_files_exit_2_without_traceback(tmp_path, capsys, case, data):
    _refused(tmp_path, capsys, data)


# --- item 6: full value checks before any kernel -----------------------------------------------

@pytest.mark.parametrize("case,old,new", [
    ("grain_zero", 'grain: "1h"', 'grain: "0s"'),
    ("grain_negative", 'grain: "1h"', 'grain: "-1h"'),
    ("grain_ambiguous_month", 'grain: "1h"', 'grain: "1M"'),
    ("horizon_days_1e9", "horizon_days: 90", "horizon_days: 1000000000"),
    ("demo_days_zero", "demo_days: 90", "demo_days: 0"),
    ("unknown_mode", "mode: demo", "mode: synthetic"),
    ("missing_loadtest_file", "loadtest_file: demo", "loadtest_file: /nonexistent/results.json"),
    ("limit_nan", "limit: 350", "limit: .nan"),
    ("limit_negative", "limit: 350", "limit: -1"),
    ("limit_inf", "limit: 350", "limit: .inf"),
    ("load_multiplier_nan", "load_multiplier: 10.0", "load_multiplier: .nan"),
    ("load_multiplier_negative", "load_multiplier: 10.0", "load_multiplier: -10"),
    ("capacity_names_that_slug_alike", "  - name: PostgreSQL database size",
     "  - name: redis-memory\n    metric: redis_used_memory_bytes\n    limit: 1\n"
     "  - name: PostgreSQL database size"),
])
def test_bad_values_exit_2_before_any_kernel(tmp_path, capsys, case, old, new):
    assert DEMO.count(old) >= 1, old
    err, _ = _refused(tmp_path, capsys, DEMO.replace(old, new, 1))
    assert "p.yaml" in err


def test_every_error_is_reported_at_once_with_key_paths(tmp_path, capsys):
    text = DEMO.replace('grain: "1h"', 'grain: "0s"').replace("limit: 350", "limit: .nan") \
        .replace("demo_days: 90", "demo_dayz: 90")
    err, _ = _refused(tmp_path, capsys, text)
    assert "grain" in err and "capacity[2].limit" in err and "demo_dayz" in err
    assert "did you mean 'demo_days'" in err


# --- item 3: secret-looking params are refused before anything is written ----------------------

@pytest.mark.parametrize("case,yaml_text,secret", [
    ("password_in_url_query", "sources:\n  - {source: http, urls: ['http://127.0.0.1:1/?password=Hunter2Secret']}\nmode: live\n",
     "Hunter2Secret"),
    ("authorization_bearer", "sources:\n  - {source: http, urls: ['http://127.0.0.1:1/'], authorization: 'Bearer abcdefSECRET123'}\nmode: live\n",
     "abcdefSECRET123"),
    ("headers_x_api_key", "sources:\n  - {source: http, urls: ['http://127.0.0.1:1/'], headers: {X-Api-Key: k3yS3cretValue}}\nmode: live\n",
     "k3yS3cretValue"),
    ("pwd_key", "sources:\n  - {source: postgres, pwd: Pa55wordValue}\nmode: live\n", "Pa55wordValue"),
    ("store_uri_with_password", "store: 'postgresql://u@h/db?password=StoreSecretX'\n", "StoreSecretX"),
])
def test_secret_looking_params_exit_2_and_write_nothing(tmp_path, capsys, case, yaml_text, secret):
    before = set(os.listdir(tmp_path))
    err, _ = _refused(tmp_path, capsys, yaml_text, secret=secret)
    created = set(os.listdir(tmp_path)) - before - {"p.yaml"}
    assert not created, f"created {created}"
    for f in Path(os.getcwd()).glob("*StoreSecretX*"):
        pytest.fail(f"a file named after the URI was created: {f}")
