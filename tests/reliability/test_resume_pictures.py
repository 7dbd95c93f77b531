"""A resumed run redraws its pictures (issue #15, item 5).

After ``kill -9`` a run folder had no pictures at all, and after ``--resume``
voltage.png still showed where the first attempt had stopped. The small half
cell of ``discharge_job.py`` (the crash tests' job) is SIGKILLed after a few
steps, a stale voltage.png is planted, and ``tomofem simulate --resume`` must
leave pictures of the finished run.
"""

from __future__ import annotations

import json
import signal

from test_crash_safety import _finish, _start, _state, _wait_for_steps

from tomofem.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def test_resume_after_sigkill_redraws_the_pictures(tmp_path):
    run = tmp_path / "run"
    ckpt = run / "simulate" / "checkpoint.h5"
    proc = _start(run, "--slow", "0.3")
    _wait_for_steps(proc, ckpt, 2)
    proc.kill()
    assert _finish(proc)[0] == -signal.SIGKILL
    killed = _state(ckpt)["accepted"]
    assert not list(run.glob("*.png"))
    (run / "voltage.png").write_bytes(b"stale: the curve up to the kill")

    assert main(["simulate", "--resume", str(run), "-q"]) == 0

    doc = json.loads((run / "results.json").read_text())
    assert doc["status"] == "complete"
    sim = json.loads((run / "simulate" / "result.json").read_text())
    assert sim["stop_reason"] == "protocol complete" and sim["steps_accepted"] > killed
    assert set(doc["results"]["pictures"]["value"]) >= {"voltage.png", "steps.png"}
    for name in ("voltage.png", "steps.png"):
        assert (run / name).read_bytes().startswith(PNG), name
    assert (run / "voltage.png").stat().st_mtime >= ckpt.stat().st_mtime
    rows = {q["name"]: q for q in doc["summary"]}
    assert rows["time steps"]["value"] == sim["steps_accepted"]
