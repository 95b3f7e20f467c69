"""Progress of `capplan run` (runner/progress.py): live line on a TTY, one line per notebook."""
import io
import json
import logging
import os
import time

from capplan.runner import progress as pg


class _Tty(io.StringIO):
    def isatty(self):
        return True


def _manifest(outputs, name, durations):
    run = outputs / name / "r1"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps(
        {"notebooks": [{"notebook": f"{k}.ipynb", "duration_s": v} for k, v in durations.items()]}))
    os.symlink("r1", outputs / name / "latest")


def test_format_duration():
    assert [pg.format_duration(s) for s in (0, 75, 3725, None, -1)] == ["0:00", "1:15", "1:02:05",
                                                                         "?", "?"]


def test_tty_shows_inner_progress_elapsed_and_remaining(tmp_path):
    _manifest(tmp_path, "demo", {"01-collect": 60.0, "02-growth": 10.0})
    out = _Tty()
    with pg.RunProgress(["01-collect", "02-growth"], stream=out, outputs=tmp_path, name="demo",
                        interval_s=0.05) as rp:
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        entry = {"status": "ok"}
        with pg.notebook_step("01-collect", run_dir, tmp_path, entry) as extra:
            assert "--IPKernelApp.log_level=ERROR" in extra["extra_arguments"]
            assert os.environ[pg.PROGRESS_ENV] == str(run_dir / ".progress.json")
            bar = pg.collection_bar(10)          # what the kernel does under `capplan run`
            bar.update(5)
            bar._write(force=True)
            time.sleep(0.3)
        assert rp.done["01-collect"] > 0
    text = out.getvalue()
    assert "[1/2] 01-collect" in text and "collect 5/10 round" in text
    assert "elapsed 0:00" in text and "remaining ~0:" in text   # from the rounds + 02's history
    assert "\rcapplan run: 01-collect   ok" in text and text.endswith("\n")
    assert pg.PROGRESS_ENV not in os.environ and not (run_dir / ".progress.json").exists()


def test_not_a_tty_prints_one_line_per_notebook_and_the_failure(tmp_path):
    out = io.StringIO()
    with pg.RunProgress(["01-collect", "02-growth"], stream=out, interval_s=0.01):
        for nb, status in (("01-collect", "ok"), ("02-growth", "failed")):
            entry = {"status": "ok"}
            with pg.notebook_step(nb, tmp_path, None, entry):
                entry["status"] = status
                time.sleep(0.05)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert lines[0].split()[2:4] == ["01-collect", "ok"] and lines[1].split()[2:4] == ["02-growth", "failed"]


def test_quiet_on_a_tty_is_one_line_per_notebook(tmp_path):
    out = _Tty()
    with pg.RunProgress(["01-collect"], stream=out, quiet=True, interval_s=0.01):
        with pg.notebook_step("01-collect", tmp_path, None, {"status": "ok"}):
            time.sleep(0.05)
    assert out.getvalue().count("\n") == 1 and "\r" not in out.getvalue()


def test_without_a_runner_the_bar_is_tqdm(monkeypatch):
    monkeypatch.delenv(pg.PROGRESS_ENV, raising=False)
    bar = pg.collection_bar(3)
    try:
        assert type(bar).__module__.startswith("tqdm")
    finally:
        bar.close()


def test_kernel_log_filter_drops_only_the_shutdown_interrupt():
    f = pg._ShutdownNoise()

    def rec(msg, level=logging.ERROR):
        return logging.LogRecord("IPKernelApp", level, __file__, 1, msg, None, None)

    assert not f.filter(rec("KeyboardInterrupt caught in kernel."))
    assert f.filter(rec("Exception in message handler:"))
    assert f.filter(rec("Error starting kernel"))


def test_first_run_estimates_the_notebook_from_its_rounds():
    rp = pg.RunProgress(["01-collect", "02-growth"], stream=io.StringIO())
    inner = {"desc": "collect", "unit": "round", "n": 2, "total": 4, "elapsed_s": 2.0}
    assert "collect 2/4 round" in rp.status_line("01-collect", 2.0, inner)
    assert "~0:02 left in 01-collect" in rp.status_line("01-collect", 2.0, inner)
    assert "remaining ~? (first run)" in rp.status_line("02-growth", 1.0, None)
