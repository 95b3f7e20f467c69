"""Fuzz suite over ``capplan usl`` and ``capplan forecast`` (issue 10, item 5): ``cli.main`` is
called in-process with generated files and flags, and must return 0 or 2 (unusable input, one
line on stderr), never raise, and never echo the file's content.  The issue's two CLI cases are
the first tests.  Seeded and bounded: see tests/fuzzing.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capplan.cli import main
from fuzzing import (CANARY, CASES, FUZZ, cell, hostile_number, mutated, plausible_number,
                     report)

FIX = Path(__file__).resolve().parent / "fixtures"
DEMO = Path(__file__).resolve().parents[1] / "lib" / "capplan" / "data" / "demo_pgbench_sweep.csv"


def run_cli(argv, capsys) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_usable_outcome(code, out, err, argv) -> None:
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"capplan {argv[0]}: "), (argv, err)
    assert CANARY not in out and CANARY not in err, (argv, err)


# -- the issue's examples -----------------------------------------------------------------------

def test_issue10_usl_on_1e300_throughput_exits_2(tmp_path, capsys):
    """``N,X\\n2,1\\n4,5\\n8,6\\n6,3\\n4,0\\n2,1e300`` was a LinAlgError traceback."""
    p = tmp_path / "points.csv"
    p.write_text("N,X\n2,1\n4,5\n8,6\n6,3\n4,0\n2,1e300\n")
    code, out, err = run_cli(["usl", str(p)], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"capplan usl: {p}:7: column 'X'") and "how to fix" in err


def _horizon_takes_a_duration() -> bool:
    """`--horizon` is a step count in older CLIs and a duration (7d) in newer ones."""
    from capplan.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    act = next(a for a in sub.choices["forecast"]._actions if "--horizon" in a.option_strings)
    return act.type is not int


HORIZON_1D = "1d" if _horizon_takes_a_duration() else "24"


def test_issue10_forecast_grain_1s_on_300_days_exits_2(tmp_path, capsys):
    """``--grain 1s`` over 300 days (26 million bins) was a MemoryError; now a ConfigError that
    names a grain that fits."""
    t = pd.date_range("2026-01-01", periods=300 * 24, freq="1h", tz="UTC")
    p = tmp_path / "memory.csv"
    pd.DataFrame({"timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "value": np.arange(len(t)) * 0.1}).to_csv(p, index=False)
    code, out, err = run_cli(["forecast", str(p), "--horizon", HORIZON_1D, "--grain", "1s"],
                             capsys)
    assert code == 2 and out == ""
    assert "--grain" in err and "bins" in err and "how to fix" in err and "1min" in err
    code, out, _err = run_cli(["forecast", str(p), "--horizon", HORIZON_1D, "--grain", "1h"],
                              capsys)
    assert code == 0 and "model:" in out


# -- capplan usl ----------------------------------------------------------------------------------

N_NAMES = ("N", "n", "concurrency", "clients", "vus", "users")
X_NAMES = ("X", "x", "throughput", "tps", "rps", "throughput_per_s")
MILD = st.one_of(hostile_number(), plausible_number(), plausible_number())


def _plant(draw, rows: list[list[str]], strategy) -> None:
    """Replace 1 or 2 cells of ``rows`` (if any) with values of ``strategy``."""
    cells = [(i, j) for i, r in enumerate(rows) for j in range(len(r))]
    for _ in range(min(len(cells), draw(st.integers(1, 2)))):
        i, j = cells[draw(st.integers(0, len(cells) - 1))]
        rows[i][j] = draw(strategy)


USL_FLAG_CHOICES = (
    ("--json",), ("--bounds-policy", "clamp"), ("--bounds-policy", "raise"), ("--predict=1,2,64",),
    ("--predict=1e300",), ("--predict=0",), ("--predict=nan",), ("--predict=1,,x",),
    ("--n-col", "N"), ("--x-col", "tps"), ("--n-col", "nope"),
)
USL_FLAGS = st.lists(st.sampled_from(USL_FLAG_CHOICES), max_size=3, unique=True)


@st.composite
def usl_case(draw) -> tuple[bytes, list]:
    """Load points and flags.  Three cases in four are USL-shaped (a curve with noise, 6 to 14
    rows, a readable header, harmless flags) and reach the fit; the fourth draws headers, row
    counts, planted hostile cells, broken rows and flags freely."""
    wild = draw(st.integers(0, 3)) == 0
    flags = draw(USL_FLAGS if wild else st.lists(st.sampled_from(USL_FLAG_CHOICES[:4]),
                                                  max_size=2, unique=True))
    if not wild or draw(st.integers(0, 3)):
        header = [draw(st.sampled_from(N_NAMES)), draw(st.sampled_from(X_NAMES))]
        if draw(st.booleans()):
            header.append("latency_ms")
        if draw(st.booleans()):
            header.reverse()
    else:
        header = draw(st.lists(st.sampled_from(N_NAMES + X_NAMES + ("latency_ms",)), min_size=1,
                               max_size=4, unique=True))
        if draw(st.booleans()):
            header.append(draw(cell()))
    lam = draw(st.sampled_from((1.0, 100.0, 1e4, 1e-3, 1e90)))
    sigma = draw(st.sampled_from((0.0, 0.02, 0.3, -0.05, 1.5)))
    kappa = draw(st.sampled_from((0.0, 1e-4, 0.01, -1e-3)))
    rows = []
    for _ in range(draw(st.integers(0, 14) if wild else st.integers(6, 14))):
        n = draw(st.sampled_from((1, 2, 4, 8, 16, 32, 64, 3, 6, 12, 24, 48)))
        x = lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))
        x *= 1 + draw(st.floats(-0.1, 0.1))
        vals = {**{h: str(n) for h in N_NAMES}, **{h: f"{x:.6g}" for h in X_NAMES},
                "latency_ms": f"{draw(st.floats(0, 100)):.3g}"}
        rows.append([vals.get(h, draw(cell())) for h in header])
    if wild and draw(st.booleans()):
        _plant(draw, rows, hostile_number())
    if wild and rows and draw(st.integers(0, 4)) == 0:
        rows[draw(st.integers(0, len(rows) - 1))].append("1")  # a row wider than the header
    raw = ("\n".join(",".join(r) for r in [header] + rows) + "\n").encode(
        "utf-8", errors="surrogatepass")
    return raw, flags


USL_SEEDS = [(FIX / "usl" / n).read_bytes() for n in
             ("usl_replicates_clients_tps.csv", "usl_superlinear.csv", "usl_ambiguous_columns.csv",
              "usl_non_numeric_cell.csv")]
USL_SEEDS.append(b"\n".join(DEMO.read_bytes().split(b"\n")[:14]) + b"\n")
USL_SEEDS.append((FIX / "loadtest" / "pgbench_summary_pg15.txt").read_bytes())


USL_GENERATED, USL_MUTATED = 550, 450


@settings(FUZZ, max_examples=USL_GENERATED)
@given(case=usl_case())
def test_fuzz_usl_generated_points(tmp_path_factory, case):
    _usl_case(tmp_path_factory, *case, "usl generated")


@settings(FUZZ, max_examples=USL_MUTATED)
@given(data=st.data(), flags=USL_FLAGS)
def test_fuzz_usl_mutated_files(tmp_path_factory, data, flags):
    seed = USL_SEEDS[data.draw(st.integers(0, len(USL_SEEDS) - 1))]
    _usl_case(tmp_path_factory, data.draw(mutated(seed, MILD)), flags, "usl mutated")


_WORK: dict[str, Path] = {}


def _work(tmp_path_factory, name: str) -> Path:
    if name not in _WORK:
        _WORK[name] = tmp_path_factory.mktemp(name.replace(" ", "-"))
    return _WORK[name]


def _usl_case(tmp_path_factory, raw: bytes, flags, counter: str) -> None:
    p = _work(tmp_path_factory, counter) / "points.csv"
    p.write_bytes(raw)
    argv = ["usl", str(p), *[a for f in flags for a in f]]
    CASES[counter] += 1
    code, out, err = _call(argv)
    assert_usable_outcome(code, out, err, argv)
    CASES[f"{counter}: fitted"] += code == 0


def _call(argv) -> tuple[int, str, str]:
    """``main(argv)`` with stdout and stderr captured (any exception propagates)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


# -- capplan forecast ----------------------------------------------------------------------------

STEPS = ("1s", "1min", "5min", "1h", "1D", "7D")
GRAINS = ("1h", "1min", "5min", "15min", "1s", "0s", "-1h", "1M", "abc", "1e9s", "")
HORIZONS = ("1d", "1h", "30d", "100000d", "0d") if HORIZON_1D == "1d" else \
    ("24", "1", "720", "10000000", "0")
EXTRA_FLAGS = ((), ("--json",), ("--lower", "0"), ("--upper", "1e-300"),
               ("--lower", "5", "--upper", "1"))


@st.composite
def forecast_case(draw) -> tuple[bytes, tuple]:
    """A series file and its flags.  Three cases in four are a well-formed hourly series of
    24 to 90 points at ``--grain 1h`` with plausible values of any scale (they reach the
    model); the fourth draws every ingredient freely: steps, grains, horizons, headers,
    planted hostile cells."""
    wild = draw(st.integers(0, 3)) == 0
    n = draw(st.integers(0, 90) if wild else st.integers(24, 90))
    start = draw(st.one_of(
        st.datetimes(min_value=pd.Timestamp("1971-01-01").to_pydatetime(),
                     max_value=pd.Timestamp("2199-01-01").to_pydatetime()),
        st.just(pd.Timestamp("2026-01-01").to_pydatetime())))
    step = pd.Timedelta(draw(st.sampled_from(STEPS)) if wild else "1h")
    jitter = draw(st.booleans())
    level = draw(st.one_of(st.just(0.0), st.floats(-1e6, 1e6), st.sampled_from((1e250, -1e250,
                                                                              1e-300))))
    slope = draw(st.sampled_from((0.0, 1.0, -0.5, 1e3)))
    cells = []
    for i in range(n):
        t = pd.Timestamp(start) + step * i
        if jitter:
            t += pd.Timedelta(seconds=draw(st.integers(0, 59)))
        cells.append([t.strftime("%Y-%m-%dT%H:%M:%SZ"), f"{level + i * slope + np.sin(i):.6g}"])
    header = "timestamp,value"
    if wild:
        if draw(st.booleans()):
            _plant(draw, cells, st.one_of(hostile_number(), cell()))
        header = draw(st.sampled_from(("timestamp,value", "value,timestamp",
                                       "Timestamp, Value", "time,value", CANARY)))
        if header == "value,timestamp":
            cells = [list(reversed(c)) for c in cells]
    raw = ("\n".join([header] + [",".join(c) for c in cells]) + "\n").encode(
        "utf-8", errors="surrogatepass")
    flags = (draw(st.sampled_from(HORIZONS)) if wild else HORIZONS[0],
             draw(st.sampled_from(GRAINS)) if wild else "1h",
             draw(st.sampled_from(EXTRA_FLAGS if wild else EXTRA_FLAGS[:3])))
    return raw, flags


FORECAST_SEEDS = [(FIX / "growth" / n).read_bytes() for n in
                  ("growth_used_memory_irregular_growing.csv", "growth_too_short.csv",
                   "growth_bad_timestamp.csv")]
FORECAST_GENERATED, FORECAST_MUTATED = 260, 120


def _forecast_flags():
    return st.tuples(st.sampled_from(HORIZONS), st.sampled_from(GRAINS),
                     st.sampled_from(EXTRA_FLAGS))


@settings(FUZZ, max_examples=FORECAST_GENERATED)
@given(case=forecast_case())
def test_fuzz_forecast_generated_series(tmp_path_factory, case):
    _forecast_case(tmp_path_factory, *case, "forecast generated")


@settings(FUZZ, max_examples=FORECAST_MUTATED)
@given(data=st.data(), flags=_forecast_flags())
def test_fuzz_forecast_mutated_files(tmp_path_factory, data, flags):
    seed = FORECAST_SEEDS[data.draw(st.integers(0, len(FORECAST_SEEDS) - 1))]
    _forecast_case(tmp_path_factory, data.draw(mutated(seed, MILD)), flags, "forecast mutated")


#: the grid guard's limit during the fuzz: the same code path as the real 1e6 bins, without
#: paying ~1 s and 0.3 GB for each generated case that is just under the real limit
FUZZ_MAX_BINS = 20_000


def _forecast_case(tmp_path_factory, raw: bytes, flags, counter: str) -> None:
    from unittest import mock

    import capplan.cli

    horizon, grain, extra = flags
    p = _work(tmp_path_factory, counter) / "series.csv"
    p.write_bytes(raw)
    argv = ["forecast", str(p), "--horizon", horizon, f"--grain={grain}", *extra]
    CASES[counter] += 1
    with mock.patch.object(capplan.cli, "MAX_FORECAST_BINS", FUZZ_MAX_BINS):
        code, out, err = _call(argv)
    assert_usable_outcome(code, out, err, argv)
    CASES[f"{counter}: fitted"] += code == 0


CLI_COUNTERS = ("usl generated", "usl mutated", "forecast generated", "forecast mutated")


def test_fuzz_cli_case_count(request):
    """The CLI cases ran without a traceback (the suite total is checked in
    tests/test_fuzz_loadtest.py, which runs after this module)."""
    if any(CASES[k] == 0 for k in CLI_COUNTERS):
        pytest.skip("counts cover the whole module; run all of tests/test_fuzz_cli.py")
    report(request, "CLI fuzz", CLI_COUNTERS, minimum=1200)
    # the property is only as good as the share of cases that get past the reader into a fit
    fitted = {k: CASES[f"{k}: fitted"] for k in CLI_COUNTERS}
    report(request, "CLI fuzz cases that reached a fit (exit 0)",
           tuple(f"{k}: fitted" for k in CLI_COUNTERS), minimum=0)
    # generated cases are built to reach the models; mutated ones mostly test the readers
    assert fitted["usl generated"] >= 100 and fitted["forecast generated"] >= 100, fitted
