"""Must-show of the scaling issue: a real pgbench sweep (8 levels) via `capplan sweep`, fitted and
shown in a handoff report."""
import json
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml

from capplan.cli import main
from capplan.loadtest.sweep import drop_pgbench_database
from capplan.runner.run import run_report

ROOT = Path(__file__).resolve().parents[1]
LEVELS = "1,2,4,8,12,16,24,32"


@pytest.mark.slow
def test_capplan_sweep_fits_usl_and_the_report_shows_it(pg_dsn, tmp_path, capsys):
    info = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    db = f"capplan_lt_{uuid.uuid4().hex[:10]}"
    target = {"host": info.get("host", "127.0.0.1"), "port": int(info.get("port", 5432)),
              "user": info.get("user", "postgres"), "dbname": db}
    csv = tmp_path / "sweep.csv"
    try:
        rc = main(["sweep", "--tool", "pgbench", "--levels", LEVELS, "--duration", "1",
                   "--scale", "2", "--host", target["host"], "--port", str(target["port"]),
                   "--user", target["user"], "--dbname", db, "--csv", str(csv), "--json",
                   "--no-progress"])
    finally:
        drop_pgbench_database(target)
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [p["concurrency"] for p in out["points"]] == [float(x) for x in LEVELS.split(",")]
    fit = out["usl"]
    assert fit is not None, out["usl_note"]
    assert fit["lambda"] > 0 and fit["n_points"] == 8

    params = yaml.safe_load((ROOT / "params" / "demo.yaml").read_text())
    params["loadtest_file"] = str(csv)
    p = tmp_path / "sweep-report.yaml"
    p.write_text(yaml.safe_dump(params))
    res = run_report(p, outputs=tmp_path / "out", cell_timeout_s=300)
    assert res.status == "ok", res.notebooks
    s = json.loads((res.run_dir / "summary.json").read_text())
    lam = {f["id"]: f for f in s["sections"]["scaling"]}["scaling.lambda"]
    assert lam["value"] == pytest.approx(fit["lambda"], rel=1e-9) and lam["n"] == 8
    md = (res.run_dir / "report.md").read_text()
    scaling = md.split("## Scaling headroom")[1].split("## Known issues")[0]
    assert "Peak throughput X(N*)" in scaling and "figures/scaling_usl.png" in scaling
