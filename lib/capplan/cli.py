"""The command line: a thin layer over library functions (deleting it changes no behaviour).

Exit codes (documented in README): 0 success, 1 failed, 2 bad params or unusable input,
3 finished with degraded data.  Help strings go through %-formatting (write ``%%``); descriptions do not.
"""

from __future__ import annotations

import argparse
import json
import sys

from capplan.errors import CapplanError, ConfigError, InsufficientData, ParseError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DEGRADED = 0, 1, 2, 3

DESCRIPTION = """\
Capacity planning for web services on PostgreSQL and Redis: collect metrics, forecast when each
resource runs out, fit load tests, and write a handoff report in which every number carries its
window, sample count and 95% interval.

Start here:
  capplan init myproject        a project folder with params, notebooks and an outputs folder
  cd myproject
  capplan run params/demo.yaml  the demo report (synthetic data, no server needed)
"""
EXIT_CODES_HELP = """\
exit codes:
  0  the report was written
  1  a notebook failed (its error-marked copy is in the run folder), or the run could not finish
  2  bad params or unusable input (nothing was run; the message names the file and key)
  3  the report was written, but from degraded data (failed reads, gaps: see its provenance)
"""


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=None, default=str, allow_nan=False))


# Each verb: add_<verb>(subparsers) registers arguments; cmd_<verb>(args) -> exit code.
# Sections are owned by the capability that provides the verb.

# --- foundation verbs (run, demo) ------------------------------------------------------------

def add_run(sub) -> None:
    p = sub.add_parser("run", help="run the report pipeline for a params file",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Run the notebooks (collect, growth, scaling, report) for one "
                                   "params file and write a new run folder with report.html, "
                                   "report.md, summary.json, figures and the executed notebooks. "
                                   "Relative paths in the params file resolve against its "
                                   "project folder (the one holding params/ or notebooks/).",
                       epilog=EXIT_CODES_HELP)
    p.add_argument("params", help="params YAML file, e.g. params/demo.yaml")
    p.add_argument("--outputs", default=None,
                   help="outputs directory (default: outputs/ in the project folder)")
    p.add_argument("--name", default=None,
                   help="run name, the folder under outputs/ (default: the params file's stem); "
                        "letters, digits, '-', '_', '.'")
    p.add_argument("--cell-timeout", type=float, default=600, help="seconds per notebook cell")
    p.add_argument("--run-timeout", type=float, default=None, help="seconds for the whole run")
    p.add_argument("--wait", type=float, default=0.0,
                   help="seconds to wait for another run of the same params to finish")
    p.add_argument("--keep", type=int, default=None, help="keep only the newest N runs")
    p.add_argument("--log-output", action="store_true", help="stream notebook output to the log")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no live progress line, only one line per notebook (also when stderr "
                        "is not a terminal)")
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    from pathlib import Path

    from capplan.runner.params import PIPELINE, project_root
    from capplan.runner.progress import RunProgress
    from capplan.runner.run import run_report

    outputs = Path(args.outputs) if args.outputs else project_root(args.params) / "outputs"
    with RunProgress(PIPELINE, quiet=args.quiet, outputs=outputs,
                     name=args.name or Path(args.params).stem):
        res = run_report(args.params, outputs=args.outputs, cell_timeout_s=args.cell_timeout,
                         name=args.name,
                         run_timeout_s=args.run_timeout, wait_s=args.wait, keep=args.keep,
                         log_output=args.log_output)
    for nb in res.notebooks:
        if nb["error"]:
            print(f"  {nb['notebook']}: {nb['error']}", file=sys.stderr)
    for src in res.failed_sources:   # named on the terminal, not only in summary.json
        print(f"capplan run: source {src.get('source')} failed: {src.get('error')}"
              + (f" — how to fix: {src.get('hint')}" if src.get("hint") else ""), file=sys.stderr)
    if res.status == "failed":
        print(f"capplan run: FAILED; the error-marked notebook is in {res.run_dir}", file=sys.stderr)
    else:
        print(res.report_html)
    return res.exit_code


def add_init(sub) -> None:
    p = sub.add_parser("init", help="start a project folder for your own services",
                       description="Write a starter project into DIR: params for the demo, for "
                                   "your Redis and PostgreSQL (sampled live) and for your "
                                   "Prometheus, each commented; a copy of the notebooks; an "
                                   "outputs folder and a .gitignore.  Then: cd DIR && capplan "
                                   "run params/demo.yaml")
    p.add_argument("dir", metavar="DIR", help="the project folder (created if missing)")
    p.add_argument("--force", action="store_true", help="overwrite files that already exist")
    p.set_defaults(func=cmd_init)


def cmd_init(args) -> int:
    from capplan.runner.init import init_project

    written = init_project(args.dir, force=args.force)
    for path in written:
        print(path)
    print(f"capplan init: {len(written)} files written; next: cd {args.dir} && capplan run "
          "params/demo.yaml", file=sys.stderr)
    return EXIT_OK


def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="write the SYNTHETIC demo history (CSV or store)",
                       description="Generate the deterministic SYNTHETIC DEMO DATA history "
                                   "(capplan.collect.demo) and write it as a contract CSV or into a store.")
    p.add_argument("--seed", type=int, help="random seed (default: capplan.collect.demo.DEFAULT_SEED, 7)")
    p.add_argument("--days", type=int, help="days of history (default 90)")
    p.add_argument("--end", help="end of the window, exclusive, UTC (default 2026-11-01T00:00:00Z)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="FILE.csv", help="write a CSV with the contract columns")
    where.add_argument("--store", metavar="PATH", help="append to the metrics store at PATH")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from capplan.collect.demo import DEMO_LABEL, generate_demo, write_frame_csv

    given = {k: getattr(args, k) for k in ("seed", "days", "end") if getattr(args, k) is not None}
    frame = generate_demo(**given)
    if args.store:
        from capplan.store import open_store

        with open_store(args.store) as store:
            rows = store.append(frame)
        target = {"store": str(args.store)}
    else:
        rows = write_frame_csv(frame, args.out)
        target = {"out": str(args.out)}
    _print_json({"label": DEMO_LABEL, "rows": rows,
                 "series": int(frame.groupby(["source", "metric", "labels"]).ngroups),
                 "first_sample": frame["timestamp"].min().isoformat(),
                 "last_sample": frame["timestamp"].max().isoformat(), **target})
    return EXIT_OK


# --- collection verbs (collect) ---------------------------------------------------------------
def add_collect(sub) -> None:
    p = sub.add_parser("collect", help="sample the params' live sources into the store",
                       description="Read every source listed under 'sources:' in PARAMS each "
                                   "interval for a bounded duration and append the samples to "
                                   "the metrics store (capplan.collect.loop.collect).")
    p.add_argument("params", metavar="PARAMS", help="params YAML with a 'sources:' list")
    p.add_argument("--duration", type=float, metavar="S",
                   help="seconds to collect (default: collect_duration_s in params, else 60)")
    p.add_argument("--interval", type=float, metavar="S",
                   help="seconds between rounds (default: collect_interval_s, else 5)")
    p.add_argument("--store", metavar="PATH",
                   help="store path or env:VAR (default: 'store' in params, else "
                        ".capplan/metrics.sqlite)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_collect)


def cmd_collect(args) -> int:
    from capplan.collect.loop import build_collectors, collect, collect_settings
    from capplan.runner.params import load_params
    from capplan.store import open_store

    raw = load_params(args.params).values   # unknown keys, wrong types and secrets refused
    settings = collect_settings(raw, duration_s=args.duration, interval_s=args.interval,
                                store=args.store)
    collectors = build_collectors(raw.get("sources"), path=str(args.params))
    try:
        with open_store(settings["store"]) as store:
            result = collect(collectors, store, duration_s=settings["duration_s"],
                             interval_s=settings["interval_s"],
                             batch_size=settings["batch_size"], progress=not args.no_progress)
    finally:
        for c in collectors:
            c.close()
    _print_json({"store": settings["store"], **result.to_dict()})
    if result.interrupted:
        return 130
    return EXIT_DEGRADED if result.degraded else EXIT_OK


# --- growth verbs (forecast, runway) ----------------------------------------------------------
def _growth_common(p) -> None:
    p.add_argument("file", metavar="FILE.csv", help="CSV with columns timestamp,value (any interval)")
    p.add_argument("--horizon", required=True, metavar="DURATION",
                   help="how far ahead, a duration: 7d, 168h, 2w, 90min")
    p.add_argument("--grain", default="1h", metavar="DURATION",
                   help="analysis grain, a duration (default 1h)")
    p.add_argument("--lower", type=float, default=None, help="physical lower bound (e.g. 0)")
    p.add_argument("--upper", type=float, default=None, help="physical upper bound (e.g. 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _growth_fit(args):
    from capplan.models.growth import fit_forecast
    from capplan.collect.files import read_series_csv

    steps = horizon_steps(args.horizon, args.grain)   # before reading: a typo fails fast
    y = read_series_csv(args.file)
    y.name = args.file
    _refuse_huge_grid(y, args.grain, args.horizon)
    return fit_forecast(y, horizon=steps, grain=args.grain, bounds=(args.lower, args.upper))


_DURATION_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(text: str, *, key: str) -> float:
    """``7d``, ``168h``, ``2w``, ``90min``, ``30s`` -> seconds (> 0); the one duration vocabulary
    of the CLI and params (windows, grains, horizons).  A bare number is refused."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|min|m|h|d|w)\s*", str(text))
    if not m or not float(m.group(1)) > 0:
        bare = re.fullmatch(r"\s*\d+(\.\d+)?\s*", str(text)) is not None
        raise ConfigError(f"{key} {text!r} is not a duration", key=key,
                          hint="write a number and a unit: 7d, 168h, 2w, 90min, 30s"
                               + (f" (a bare number has no unit; for {text} hours write "
                                  f"{str(text).strip()}h)" if bare else ""))
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def horizon_steps(horizon: str, grain: str) -> int:
    """The number of grain steps in a horizon (rounded up): ``7d`` at ``1h`` -> 168."""
    import math

    steps = duration_seconds(horizon, key="--horizon") / duration_seconds(grain, key="--grain")
    return max(1, math.ceil(steps - 1e-9))


#: most grid points (history bins + horizon steps) a forecast is asked to hold: 1e6 bins fit in
#: ~0.3 GB and ~1 s; `--grain 1s` over 300 days (2.6e7 bins) ran out of memory (issue 10).
MAX_FORECAST_BINS = 1_000_000


def _refuse_huge_grid(y, grain, horizon) -> None:
    """ConfigError (exit 2) when the series' span at ``grain`` plus the horizon exceeds
    :data:`MAX_FORECAST_BINS`, or runs past the last representable time; says which grain fits.
    An unreadable grain or horizon is left to the forecast's own checks."""
    import math

    import pandas as pd

    try:  # the CLI's durations (7d, 90min); a step count for an integer horizon
        step = pd.Timedelta(seconds=duration_seconds(grain, key="--grain"))
        ahead = pd.Timedelta(seconds=duration_seconds(horizon, key="--horizon")) \
            if isinstance(horizon, str) else step * int(horizon)
    except (ConfigError, ValueError, TypeError, OverflowError):
        return
    if step <= pd.Timedelta(0) or not len(y) or pd.isna(ahead):
        return
    span = y.index.max() - y.index.min()
    bins = span / step + 1 + ahead / step
    if bins > MAX_FORECAST_BINS:
        grains = {"1min": 60, "5min": 300, "15min": 900, "1h": 3600, "6h": 21600, "1d": 86400,
                  "7d": 604800}
        fits = next((g for g, sec in grains.items()
                     if (span + ahead).total_seconds() / sec + 1 <= MAX_FORECAST_BINS), None)
        raise ConfigError(f"--grain {grain} over {span.total_seconds() / 86400:.4g} days of "
                          f"history and the horizon makes {math.ceil(bins):,} bins; a forecast "
                          f"holds at most {MAX_FORECAST_BINS:,}", key="--grain",
                          hint=f"use a coarser grain, e.g. --grain {fits}" if fits else
                          "use a coarser --grain or a shorter --horizon")
    if (pd.Timestamp.max.tz_localize("UTC") - y.index.max()) <= ahead:
        raise ConfigError("the horizon reaches past the year 2262", key="--horizon",
                          hint="use a shorter --horizon")


def _growth_run(verb: str, fn, args) -> int:
    """Unusable input -> exit 2 with ONE line (message and hint joined)."""
    from capplan.errors import DataContractError, FitError

    try:
        return fn(args)
    except (ConfigError, ParseError, InsufficientData, FitError, DataContractError) as exc:
        hint = f" (how to fix: {exc.hint})" if exc.hint else ""
        print(f"capplan {verb}: {exc.message}{hint}".replace("\n", " "), file=sys.stderr)
        return EXIT_BAD_INPUT


def add_forecast(sub) -> None:
    p = sub.add_parser("forecast", help="forecast a timestamp,value series with calibrated intervals",
                       description="Forecast a metric from a CSV of timestamp,value rows: the "
                                   "model chosen by backtest (level, trend, season), 80% and "
                                   "95% intervals checked on the series' own history, and the "
                                   "level shifts it found.  Example: capplan forecast "
                                   "memory.csv --horizon 30d")
    _growth_common(p)
    p.set_defaults(func=cmd_forecast)


def _forecast(args) -> int:
    fc = _growth_fit(args)
    if args.json:
        _print_json(fc.to_dict())
        return EXIT_OK
    bt = fc.backtest
    print(f"model: {fc.model}")
    print(f"backtest: MASE {bt.mase:.3f}, 80% interval covered {bt.coverage80:.0%}, "
          f"95% covered {bt.coverage95:.0%} ({bt.folds} folds)")
    for c in fc.changes:
        print(f"change: {c.kind} {c.size:+.4g} at {c.timestamp.isoformat()}")
    for w in fc.warnings:
        print(f"warning: {w}")
    print(fc.frame.to_string(float_format=lambda v: f"{v:.6g}"))
    return EXIT_OK


def cmd_forecast(args) -> int:
    return _growth_run("forecast", _forecast, args)


def add_runway(sub) -> None:
    p = sub.add_parser("runway", help="when does a series cross a limit (with a 95%% range)",
                       description="When does a metric reach its limit?  Forecasts a CSV of "
                                   "timestamp,value rows and gives the first crossing date with "
                                   "a 95% range and the probability of crossing within the "
                                   "horizon.  Example: capplan runway disk.csv --limit 6.4e10 "
                                   "--horizon 90d")
    _growth_common(p)
    p.add_argument("--limit", type=float, required=True, help="the limit, in the series' units")
    p.set_defaults(func=cmd_runway)


def _runway(args) -> int:
    from capplan.models.growth import time_to_limit

    rw = time_to_limit(_growth_fit(args), args.limit)
    if args.json:
        _print_json(rw.to_dict())
        return EXIT_OK
    # one vocabulary with the report (Runway.crossing_text): the status follows from P
    p = rw.p_cross_within_horizon
    when = rw.crossing_text(with_status=False)
    print(f"status: {rw.status}; " + (f"crossing {when}" if rw.status == "crosses" else when)
          + "; P(cross within horizon) = " + ("n/a" if p is None else f"{p:.2f}"))
    print(f"model: {rw.model}")
    for w in rw.warnings:
        print(f"warning: {w}")
    return EXIT_OK


def cmd_runway(args) -> int:
    return _growth_run("runway", _runway, args)


# --- scaling verbs (usl, sweep) ---------------------------------------------------------------
# usl: owned by the USL model (capplan.models.usl); self-contained, sweep follows.
USL_N_NAMES = ("n", "concurrency", "clients", "vus", "users")
USL_X_NAMES = ("x", "throughput", "tps", "rps", "throughput_per_s")  # last: capplan load points


def add_usl(sub) -> None:
    p = sub.add_parser("usl", help="fit the Universal Scalability Law to a CSV of load points",
                       description="Fit X(N) = lambda N / (1 + sigma (N-1) + kappa N (N-1)) to a "
                                   "CSV with a concurrency and a throughput column (N/X, "
                                   "concurrency/throughput, clients/tps, vus/rps, users/throughput"
                                   "; several rows per level are replicates).  Exit code 2 with a "
                                   "one-line error on unusable input.")
    p.add_argument("file", metavar="FILE.csv")
    p.add_argument("--json", action="store_true", help="print one JSON object (stable contract)")
    p.add_argument("--n-col", metavar="C", help="concurrency column (default: recognised by name)")
    p.add_argument("--x-col", metavar="C", help="throughput column (default: recognised by name)")
    p.add_argument("--predict", metavar="N,N,...",
                   help="add predictions with 95%% prediction intervals at these concurrencies")
    p.add_argument("--bounds-policy", default="report", choices=["report", "clamp", "raise"],
                   help="negative sigma/kappa: report them (default), clamp at 0, or fail")
    p.set_defaults(func=cmd_usl)


def _usl_column(header: list[str], given: str | None, names: tuple, what: str, path: str,
                flag: str) -> int:
    low = [h.strip().lower() for h in header]
    if given is not None:
        if given in header:
            return header.index(given)
        if given.strip().lower() in low:
            return low.index(given.strip().lower())
        raise ConfigError(f"no column {given!r} in the header ({len(header)} columns)",
                          path=path, key=flag)
    hits = [i for i, h in enumerate(low) if h in names]
    if len(hits) != 1:
        found = "several: " + ", ".join(header[i] for i in hits) if hits else "none"
        raise ConfigError(f"cannot tell the {what} column (looked for {', '.join(names)}; "
                          f"{found}; the header has {len(header)} columns)", path=path,
                          hint=f"name it with {flag}")
    return hits[0]


def _read_usl_csv(path: str, n_col: str | None, x_col: str | None):
    """(n, x) float lists from a CSV, by column name; errors name the file and line."""
    import csv
    import math

    from capplan.models.usl import MAX_CONCURRENCY, MAX_THROUGHPUT

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ParseError(f"cannot read: {exc}", path=path) from exc
    lines = [(i + 1, r) for i, r in enumerate(rows) if r and any(c.strip() for c in r)]
    if not lines:
        raise ParseError("empty file (expected a header and load points)", path=path)
    header = [h.strip() for h in lines[0][1]]
    ni = _usl_column(header, n_col, USL_N_NAMES, "concurrency", path, "--n-col")
    xi = _usl_column(header, x_col, USL_X_NAMES, "throughput", path, "--x-col")
    n, x = [], []
    for lineno, row in lines[1:]:
        if len(row) != len(header):
            raise ParseError(f"row has {len(row)} fields, the header has {len(header)}",
                             path=path, line=lineno)
        for idx, out in ((ni, n), (xi, x)):
            cell = row[idx].strip()
            try:
                v = float(cell)
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                # header[idx] matched a known name or the user's flag: safe to show; the cell
                # is file content and is never echoed
                raise ParseError(f"column {header[idx]!r}: not a finite number",
                                 path=path, line=lineno)
            lo, hi = (0.0, MAX_CONCURRENCY) if idx == ni else (0.0, MAX_THROUGHPUT)
            if not (lo < v <= hi if idx == ni else lo <= v <= hi):
                what = "concurrency above 0" if idx == ni else "throughput from 0"
                raise ParseError(f"column {header[idx]!r}: a USL fit takes a {what} up to "
                                 f"{hi:g}", path=path, line=lineno,
                                 hint="drop rows without a measured load or from failed runs, "
                                      "or rescale the unit")
            out.append(v)
    return n, x


def _usl_load_points(path: str):
    """(n, x) from a load-test result file (pgbench, redis-benchmark, k6, Locust, wrk), or
    (None, None) when the file is not one (then it is read as a CSV of N,X columns).

    A result file of ONE run holds one concurrency level, and a fit needs several: the error
    says how to get them instead of asking for a column that is not there."""
    from capplan.loadtest import detect_format, read_loadtest

    try:
        fmt = detect_format(path)
    except (ParseError, OSError):
        return None, None
    if fmt == "points":
        return None, None
    pts = read_loadtest(path)
    if pts["scenario"].nunique() > 1:
        pts = pts[pts["scenario"] == pts["scenario"].iloc[0]]
    levels = sorted(set(pts["concurrency"].dropna().astype(float)))
    if len(levels) < 2:
        at = f" (concurrency {levels[0]:g})" if levels else ""
        raise ConfigError(
            f"this is a {fmt} result of a single run{at}: one concurrency level, and a USL fit "
            "needs load points at several", path=path,
            hint="run the load test at several concurrency levels, e.g. `capplan sweep --tool "
                 "pgbench --levels 1,2,4,8,16,32 --csv points.csv` and then `capplan usl "
                 "points.csv`, or write a CSV with columns concurrency,throughput (one row per "
                 "run)")
    return (pts["concurrency"].to_numpy(float).tolist(),
            pts["throughput_per_s"].to_numpy(float).tolist())


def cmd_usl(args) -> int:
    import math

    from capplan.models.usl import fit_usl

    try:
        predict = None
        if args.predict:
            try:
                predict = [float(v) for v in args.predict.split(",") if v.strip()]
            except ValueError as exc:
                raise ConfigError(f"--predict must be comma-separated numbers, got "
                                  f"{args.predict!r}", key="--predict") from exc
            if not predict or not all(math.isfinite(v) and v > 0 for v in predict):
                raise ConfigError(f"--predict needs positive numbers, got {args.predict!r}",
                                  key="--predict")
        n, x = (_usl_load_points(args.file) if args.n_col is None and args.x_col is None
                else (None, None))
        if n is None:
            n, x = _read_usl_csv(args.file, args.n_col, args.x_col)
        fit = fit_usl(n, x, bounds_policy=args.bounds_policy)
    except CapplanError as exc:  # unusable input: one line on stderr, exit 2
        msg = exc.message + (f" (how to fix: {exc.hint})" if exc.hint else "")
        print(f"capplan usl: {' '.join(msg.split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = fit.to_dict()
    if predict is not None:
        fin = lambda v: float(v) if math.isfinite(v) else None  # noqa: E731 (strict JSON)
        out["predictions"] = [
            {"n": float(r.n), "x": fin(r.x), "x_lo95": fin(r.x_lo95),
             "x_hi95": fin(r.x_hi95), "extrapolated": bool(r.extrapolated)}
            for r in fit.predict(predict).itertuples()]
    if args.json:
        _print_json(out)
        return EXIT_OK
    fmt = lambda v: "-" if v is None else f"{v:.6g}"  # noqa: E731
    pair = lambda p: f"[{fmt(p[0])}, {fmt(p[1])}]"  # noqa: E731
    print(f"USL fit of {args.file}: {out['n_points']} points, {out['n_levels']} levels, "
          f"df {out['df']}, residual s.e. {fmt(out['rse'])}")
    for k in ("sigma", "kappa", "lambda"):
        print(f"  {k:<8} {fmt(out[k]):>12}  s.e. {fmt(out['stderr'][k]):>10}  "
              f"95% CI {pair(out['ci95'][k])}")
    print(f"  peak concurrency N*  {fmt(out['n_peak'])}  95% {pair(out['n_peak_ci95'])}")
    print(f"  peak throughput X(N*) {fmt(out['x_peak'])}  95% {pair(out['x_peak_ci95'])}")
    print(f"  ceiling lambda/sigma {fmt(out['x_ceiling'])}  95% {pair(out['x_ceiling_ci95'])}")
    for p in out.get("predictions", []):
        flag = "  (extrapolated)" if p["extrapolated"] else ""
        print(f"  X({p['n']:g}) = {fmt(p['x'])}  95% [{fmt(p['x_lo95'])}, {fmt(p['x_hi95'])}]"
              f"{flag}")
    for w in out["warnings"]:
        print(f"  warning: {w}")
    return EXIT_OK


def add_sweep(sub) -> None:
    p = sub.add_parser("sweep", help="drive pgbench or redis-benchmark over concurrency levels",
                       description="Run a real load generator once per concurrency level "
                                   "against a loopback target (capplan.loadtest.sweep.run_sweep) "
                                   "and print the load points; --store appends them to the "
                                   "metrics store.  Non-loopback targets need --allow-remote.")
    p.add_argument("--tool", required=True, choices=["pgbench", "redis-benchmark"])
    p.add_argument("--levels", required=True, metavar="N,N,...",
                   help="concurrency levels (clients), e.g. 1,2,4,8,12,16,24,32")
    p.add_argument("--duration", type=float, default=3.0, metavar="S",
                   help="seconds per level (pgbench -T; redis-benchmark: time bound) [3]")
    p.add_argument("--host", help="server host [127.0.0.1]")
    p.add_argument("--port", type=int, help="server port [5432 / 6379]")
    p.add_argument("--user", help="PostgreSQL role [$PGUSER or postgres]")
    p.add_argument("--dbname", help="PostgreSQL database, created and initialised if missing "
                                    "[capplan_sweep]")
    p.add_argument("--url", help="postgresql://... or redis://... (instead of host/port/...); "
                                 "passwords go through PGPASSWORD, never the command line")
    p.add_argument("--db", type=int, help="Redis database number for the benchmark keys [9]")
    p.add_argument("--script", default="select-only",
                   help="pgbench builtin: select-only, tpcb-like, simple-update [select-only]")
    p.add_argument("--jobs", type=int, default=2, help="pgbench threads (-j), capped at N [2]")
    p.add_argument("--scale", type=int, default=2, help="pgbench -i scale when initialising [2]")
    p.add_argument("--no-prepare", action="store_true",
                   help="do not create/initialise the pgbench database")
    drop = p.add_mutually_exclusive_group()
    drop.add_argument("--drop-db", dest="drop_db", action="store_true", default=None,
                      help="drop the pgbench database after the sweep (default when this sweep "
                           "created it; only capplan_* databases)")
    drop.add_argument("--keep-db", dest="drop_db", action="store_false",
                      help="keep the pgbench database for the next sweep")
    p.add_argument("--requests", type=int, default=10_000,
                   help="redis-benchmark -n per test and level [10000]")
    p.add_argument("--tests", default="get,set", help="redis-benchmark -t tests [get,set]")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback target (this is a load test!)")
    p.add_argument("--run-id", help="run id for the points [sweep-<tool>-<UTC time>]")
    p.add_argument("--store", metavar="PATH", help="append the points to this store (or env:VAR)")
    p.add_argument("--csv", metavar="PATH", help="also write the load points to this CSV file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args) -> int:
    import math

    from capplan.loadtest.points import points_to_frame
    from capplan.loadtest.sweep import (drop_pgbench_database, pgbench_database_exists,
                                        prepare_pgbench, run_sweep)

    try:
        levels = [int(x) for x in str(args.levels).split(",") if x.strip()]
    except ValueError as exc:
        raise ConfigError(f"--levels must be comma-separated integers, got {args.levels!r}",
                          key="levels") from exc
    keys = ("host", "port", "user", "dbname", "url", "db")
    target = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    drop_db = False
    if args.tool == "pgbench":
        existed = pgbench_database_exists(target, allow_remote=args.allow_remote)
        # --drop-db / --keep-db win; by default drop only what this sweep creates
        drop_db = (not existed and not args.no_prepare) if args.drop_db is None else args.drop_db
        if not args.no_prepare:
            target.setdefault("dbname", prepare_pgbench(target, args.scale,
                                                        allow_remote=args.allow_remote))
    try:
        points = run_sweep(args.tool, levels, duration_s=args.duration, target=target,
                           allow_remote=args.allow_remote, progress=not args.no_progress,
                           run_id=args.run_id, jobs=args.jobs, script=args.script,
                           requests=args.requests,
                           tests=tuple(t for t in args.tests.split(",") if t))
    finally:
        if drop_db:
            drop_pgbench_database(target, allow_remote=args.allow_remote)
            print(f"capplan sweep: dropped the sweep database {target.get('dbname', '')} "
                  "(--keep-db keeps it)".replace("  ", " "), file=sys.stderr)
    written = None
    if args.store:
        from capplan.store import open_store

        with open_store(args.store) as store:
            written = store.append(points_to_frame(points))
    if args.csv:
        points.to_csv(args.csv, index=False)
    fit, fit_note = _sweep_fit(points)
    if args.json:
        records = [{k: (None if isinstance(v, float) and math.isnan(v) else
                        v.isoformat() if hasattr(v, "isoformat") else v)
                    for k, v in rec.items()} for rec in points.to_dict(orient="records")]
        _print_json({"tool": args.tool, "run_id": points["run_id"].iloc[0] if len(points)
                     else None, "points": records, "store": args.store, "rows_written": written,
                     "usl": fit.to_dict() if fit is not None else None, "usl_note": fit_note})
    else:
        cols = ["concurrency", "scenario", "throughput_per_s", "latency_mean_s",
                "latency_p95_s", "errors", "requests", "duration_s"]
        print(points[cols].to_string(index=False))
        if args.store:
            print(f"appended {written} rows to {args.store}")
        if fit is not None:
            print(f"USL fit: sigma {fit.sigma:.4g}, kappa {fit.kappa:.4g}, lambda {fit.lam:.4g}/s; "
                  f"N* {fit.n_peak if fit.n_peak is None else round(fit.n_peak, 1)}, X(N*) "
                  f"{fit.x_peak if fit.x_peak is None else round(fit.x_peak, 1)}/s")
        else:
            print(f"USL fit: {fit_note}")
    return EXIT_OK


def _sweep_fit(points):
    """The fit that follows a sweep (one scenario at a time; None with the reason if not)."""
    from capplan.errors import CapplanError
    from capplan.models.usl import fit_usl

    if points["scenario"].nunique() > 1:
        return None, "several scenarios in one sweep: fit each with `capplan usl --x-col ...`"
    try:
        return fit_usl(points["concurrency"].to_numpy(float),
                       points["throughput_per_s"].to_numpy(float)), None
    except CapplanError as exc:
        return None, exc.message


# --- operations verbs (fleet, alerts) ---------------------------------------------------------

def add_fleet(sub) -> None:
    p = sub.add_parser("fleet", help="one report per service plus a fleet summary (on Dask)",
                       description="Analyse every service of a fleet params file (a list, or a "
                                   "label selector on Prometheus) on a Dask cluster and write one "
                                   "report per service plus fleet.md/.html/.json ranking the top "
                                   "risks (capplan.runner.fleet.run_fleet).  Exit codes: 0 all services "
                                   "ok, 1 none produced a report, 2 bad params, 3 some failed or "
                                   "had degraded data.")
    p.add_argument("params", metavar="PARAMS", help="fleet params YAML, e.g. params/fleets/fleet-demo.yaml")
    p.add_argument("--scheduler", metavar="ADDR", default=None,
                   help="Dask scheduler address (tcp://host:8786); default: params, else a "
                        "LocalCluster")
    p.add_argument("--workers", type=int, metavar="N", default=None,
                   help="LocalCluster worker processes (default: params 'workers', else 2)")
    p.add_argument("--outputs", metavar="DIR", default=None, help="outputs directory (default: outputs/)")
    p.add_argument("--wait", type=float, default=0.0, metavar="S",
                   help="seconds to wait for another run of the same fleet to finish")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_fleet)


def cmd_fleet(args) -> int:
    from capplan.runner.fleet import run_fleet

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}", key="--workers")
    res = run_fleet(args.params, outputs=args.outputs, scheduler=args.scheduler,
                    workers=args.workers, progress=not args.no_progress, wait_s=args.wait)
    for s in res.services:
        line = f"  {s['name']:<24} {s['status']:<8} {s['duration_s'] or 0:6.1f} s"
        print(line + (f"  {s['error']}" if s["error"] else ""), file=sys.stderr)
    if res.status == "failed":
        print(f"capplan fleet: FAILED; no service produced a report (see {res.run_dir})",
              file=sys.stderr)
    print(res.html)
    return res.exit_code


def add_alerts(sub) -> None:
    p = sub.add_parser("alerts", help="Prometheus alerting rules from the params' targets and capacity",
                       description="Write the targets, SLOs and capacity limits of a params file as "
                                   "Prometheus alerting rules (capplan.runner.alerts): the thresholds of "
                                   "the handoff document are the ones that page.  Check the output "
                                   "with: promtool check rules FILE.")
    p.add_argument("params", metavar="PARAMS", help="params YAML of a capplan run, e.g. params/demo.yaml")
    p.add_argument("--out", metavar="FILE", help="rule file to write (default: standard output)")
    p.add_argument("--selector", default="", metavar="MATCHERS",
                   help='label matchers added to every series, e.g. job="checkout"')
    p.add_argument("--by", default="", metavar="LABELS",
                   help="comma-separated labels kept apart, e.g. instance (default: sum all)")
    p.add_argument("--util-warn", type=float, default=0.8, help="capacity utilisation warning [0.8]")
    p.add_argument("--util-crit", type=float, default=0.9, help="capacity utilisation critical [0.9]")
    p.set_defaults(func=cmd_alerts)


def cmd_alerts(args) -> int:
    from capplan.runner.alerts import alerts_from_params, rules_yaml, write_rules

    by = tuple(x.strip() for x in args.by.split(",") if x.strip())
    rules = alerts_from_params(args.params, selector=args.selector.strip().strip("{}"), by=by,
                               util_warn=args.util_warn, util_crit=args.util_crit)
    if args.out:
        print(write_rules(rules, args.out))
    else:
        sys.stdout.write(rules_yaml(rules))
    return EXIT_OK


# --- performance gates (compare) --------------------------------------------------------------
COMPARE_EXIT_CODES = """\
exit codes:
  0  no metric regressed
  1  at least one metric regressed
  2  bad input: a file, glob, window or flag that cannot be used (the message names it)
  3  with --fail-on insufficient: no regression, but some metric had insufficient evidence
"""


def add_compare(sub) -> None:
    p = sub.add_parser(
        "compare", help="baseline vs candidate load tests (or summary.json files, or store "
                        "windows): a CI performance gate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare a baseline with a candidate and say, per metric (throughput, mean, "
                    "p50, p95, p99 latency, error rate), whether it regressed, improved, did "
                    "not change, or whether the evidence is insufficient, with the change and "
                    "its interval.\n\nBASELINE and CANDIDATE are load-test results in any "
                    "format capplan reads (pgbench -l logs, aggregate logs, -P progress or "
                    "summary; k6 NDJSON, CSV or summary; Locust history or stats; wrk; "
                    "redis-benchmark), each a file, a run directory, a directory of runs or a "
                    "quoted glob; or two summary.json files; or, with --store, two windows "
                    "START..END of one store.  Runs are the unit of evidence: give each side "
                    "at least two runs (see docs/ci.md).",
        epilog=COMPARE_EXIT_CODES)
    p.add_argument("baseline", metavar="BASELINE", help="baseline result(s), summary.json, or "
                   "window START..END with --store")
    p.add_argument("candidate", metavar="CANDIDATE", help="candidate result(s), summary.json, "
                   "or window START..END with --store")
    p.add_argument("--metrics", metavar="M,M",
                   help="metrics to judge (default all: throughput,latency_mean,latency_p50,"
                        "latency_p95,latency_p99,error_rate; with --store: store metric names)")
    p.add_argument("--min-effect", action="append", default=[], metavar="METRIC=FRACTION",
                   help="minimum practical effect, relative (0.05 = 5%%; error_rate: absolute "
                        "share, 0.001 = 0.1 pp); repeatable (default: throughput, mean, p50 "
                        "0.05; p95, p99 0.10; error_rate 0.001)")
    p.add_argument("--confidence", type=float, default=None, metavar="C",
                   help="simultaneous confidence level of the intervals [0.95]")
    p.add_argument("--no-adjust", action="store_true",
                   help="each interval at --confidence (no Bonferroni across metrics)")
    p.add_argument("--min-runs", type=int, default=None, metavar="N",
                   help="runs a side below which verdicts are 'insufficient evidence' [2]")
    p.add_argument("--bucket", type=float, default=None, metavar="S",
                   help="time-bucket width for per-request logs, seconds [1, narrower for "
                        "runs under 30 s]")
    p.add_argument("--tool", metavar="FORMAT", help="force the reader (e.g. pgbench-log, "
                   "k6-json, wrk) instead of sniffing the content")
    p.add_argument("--n-boot", type=int, default=1000, metavar="N", help="bootstrap resamples [1000]")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed [0]")
    p.add_argument("--params", metavar="FILE",
                   help="YAML whose 'compare:' section sets defaults for these flags "
                        "(confidence, min_effect, metrics, min_runs, bucket_s, fail_on)")
    p.add_argument("--fail-on", choices=["regression", "insufficient"], default=None,
                   help="'insufficient': exit 3 when some metric lacks evidence [regression]")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML, one test case per metric")
    p.add_argument("--markdown", metavar="FILE", help="write a Markdown table (PR comment, "
                   "$GITHUB_STEP_SUMMARY)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--store", metavar="PATH", help="compare two windows of this store "
                   "(path or env:VAR); BASELINE/CANDIDATE are START..END")
    p.add_argument("--source", help="with --store: the series' source")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                   help="with --store: the series' labels (repeatable)")
    p.add_argument("--grain", default="1min", help="with --store: bucket width [1min]")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    """Unusable input of any kind is exit 2 (1 means a regression here)."""
    try:
        return _compare(args)
    except CapplanError as exc:
        print(f"capplan compare: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _compare(args) -> int:
    from capplan.analysis.compare import compare, compare_store_windows, compare_settings
    from capplan.report.compare_output import (comparison_json, markdown_table, write_junit,
                                               write_markdown)

    s = compare_settings(args.params, metrics=args.metrics, min_effect=args.min_effect,
                         confidence=args.confidence, min_runs=args.min_runs,
                         bucket_s=args.bucket, fail_on=args.fail_on, no_adjust=args.no_adjust)
    if args.store:
        cmp = compare_store_windows(args.store, metrics=s["store_metrics"],
                                    baseline=s["window"](args.baseline, "BASELINE"),
                                    candidate=s["window"](args.candidate, "CANDIDATE"),
                                    source=args.source, labels=s["labels"](args.label),
                                    grain=args.grain, conf=s["conf"], n_boot=args.n_boot,
                                    seed=args.seed)
    else:
        cmp = compare(args.baseline, args.candidate, tool=args.tool, metrics=s["metrics"],
                      conf=s["conf"], min_effect=s["min_effect"], bucket_s=s["bucket_s"],
                      min_runs=s["min_runs"], n_boot=args.n_boot, seed=args.seed,
                      adjust=s["adjust"])
    if args.junit:
        write_junit(cmp, args.junit, fail_on=s["fail_on"])
    if args.markdown:
        write_markdown(cmp, args.markdown)
    if args.json:
        print(comparison_json(cmp))
    else:
        sys.stdout.write(markdown_table(cmp))
    return cmp.exit_code(s["fail_on"])


# --- params schema (schema) -------------------------------------------------------------------

def add_schema(sub) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of params files",
                       description="Print the JSON Schema (draft 2020-12) of a params file, from the "
                                   "typed params model that `capplan run` checks.  Editors that "
                                   "speak the YAML language server complete and check params files "
                                   "against it: start a params file with\n"
                                   "  # yaml-language-server: $schema=<path or URL of this schema>",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", metavar="FILE", help="write it to FILE instead of standard output")
    p.add_argument("--fleet", action="store_true", help="the schema of fleet params files instead")
    p.set_defaults(func=cmd_schema)


def cmd_schema(args) -> int:
    from capplan.runner.schema import fleet_json_schema, json_schema

    text = json.dumps(fleet_json_schema() if args.fleet else json_schema(), indent=2,
                      sort_keys=True) + "\n"
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from capplan import __version__

    parser = argparse.ArgumentParser(prog="capplan", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Every verb has its own --help.  " + EXIT_CODES_HELP)
    parser.add_argument("--version", action="version", version=f"capplan {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, obj in list(globals().items()):
        if name.startswith("add_") and callable(obj):
            obj(sub)
    return parser


def _one_line(exc: Exception) -> str:
    """The error and its hint on one line (scripts read the first line of stderr)."""
    return " ".join(str(exc).replace("\n  how to fix:", " — how to fix:").split("\n"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, ParseError, InsufficientData) as exc:
        print(f"capplan {args.verb}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CapplanError as exc:
        print(f"capplan {args.verb}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"capplan {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
