"""Crash safety of long runs: signals, SIGKILL + resume, failing writes, the step-size floor.

The discharge runs are separate processes so they can be killed for real. One
small half cell (~30 steps) in a CLI run folder (``discharge_job.py``, what
``tomofem simulate`` does after meshing) is run four ways:

* uninterrupted (the reference curve);
* SIGKILLed partway (no chance to clean up: only the periodic checkpoint
  survives);
* resumed with the real ``tomofem simulate --resume RUN`` and sent SIGTERM
  partway: the step finishes, checkpoint and partial results are written, the
  command exits 130 with a message saying how to continue;
* resumed again with the CLI to the end: its voltage curve must equal the
  reference to 1e-10 relative with the same steps. The time points agree to
  round-off: the step that lands on the cut-off voltage is sized from two
  voltages, and a resumed run refactorises where the uninterrupted one reused
  a factorisation, so its last time point may differ by ~1e-11 relative.

A copy of a mid-run state, resumed with Newton capped at one iteration, must
cut the step down to the floor and stop cleanly with the last good state.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

JOB = Path(__file__).with_name("discharge_job.py")
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _start(run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(JOB), str(run_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _cli_resume(run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tomofem", "simulate", "--resume", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _finish(proc: subprocess.Popen, timeout: float = 240.0) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _state(ckpt: Path) -> dict:
    with h5py.File(ckpt, "r") as h5:
        return json.loads(h5["state"][()].decode())


def _wait_for_steps(proc: subprocess.Popen, ckpt: Path, steps: int, timeout: float = 240.0) -> int:
    """Poll the (atomically replaced) checkpoint until it holds ``steps`` accepted steps."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"job ended early: {proc.communicate()}")
        if ckpt.exists():
            accepted = _state(ckpt)["accepted"]
            if accepted >= steps:
                return accepted
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no checkpoint with enough steps in time")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if "tmp" in p.name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    run = tmp_path_factory.mktemp("reference") / "run"
    rc, _out, err = _finish(_start(run))
    assert rc == 0, err[-3000:]
    return json.loads((run / "simulate" / "result.json").read_text())


def test_sigkill_sigterm_resume_equals_uninterrupted_run(tmp_path, reference):
    run = tmp_path / "run"
    ckpt = run / "simulate" / "checkpoint.h5"
    n_ref = reference["steps_accepted"]
    assert n_ref >= 12, "the reference run is too short to interrupt twice"
    # The step size must change during the run, or a resume that restarts with the wrong
    # step (as the first checkpoints did: written before the step grew) would go unseen.
    assert len(set(reference["series"]["dt"][1:8])) >= 4

    # SIGKILL partway: only the periodic checkpoint survives, complete.
    proc = _start(run, "--slow", "0.3")
    _wait_for_steps(proc, ckpt, 3)
    proc.kill()
    rc, _, _ = _finish(proc)
    assert rc == -signal.SIGKILL
    killed = _state(ckpt)
    assert 2 <= killed["accepted"] < n_ref
    with h5py.File(ckpt, "r") as h5:
        # the solid unknown is stored as w_s = logit(c_s / c_max) (#16)
        assert h5.attrs["format"] == "tomofem-checkpoint" and "fields/w_s@nm1" in h5
    assert _leftovers(run) == []

    # `tomofem simulate --resume`, then SIGTERM: finish the step, checkpoint, partial
    # results, exit 130 with a message that says how to continue.
    proc = _cli_resume(run)
    _wait_for_steps(proc, ckpt, killed["accepted"] + 2)
    proc.send_signal(signal.SIGTERM)
    rc, _out, err = _finish(proc)
    assert rc == 130, err[-3000:]
    assert "interrupted by SIGTERM" in err and f"tomofem simulate --resume {run}" in err
    assert "Traceback" not in err
    partial = json.loads((run / "simulate" / "result.json").read_text())
    stopped = _state(ckpt)
    assert partial["stop_reason"].startswith("interrupted by SIGTERM")
    assert killed["accepted"] < stopped["accepted"] == partial["steps_accepted"] < n_ref
    assert len(partial["series"]["voltage"]) == stopped["accepted"] + 1
    assert json.loads((run / "results.json").read_text())["status"] == "interrupted"
    assert _leftovers(run) == []
    failing = tmp_path / "failing"  # a copy of this mid-run state, for the Newton-failure check
    shutil.copytree(run, failing)

    # Resume to the end: the same steps and the same voltages as without interruptions.
    rc, _out, err = _finish(_cli_resume(run))
    assert rc == 0, err[-3000:]
    final = json.loads((run / "simulate" / "result.json").read_text())
    assert final["stop_reason"] == "protocol complete"
    assert final["steps_accepted"] == n_ref
    assert final["series"]["step"] == reference["series"]["step"]
    for key in ("time", "dt"):
        np.testing.assert_allclose(final["series"][key], reference["series"][key], rtol=1e-9)
    v, v_ref = np.array(final["series"]["voltage"]), np.array(reference["series"]["voltage"])
    np.testing.assert_allclose(v, v_ref, rtol=1e-10, atol=0.0)
    np.testing.assert_allclose(
        final["series"]["li_solid"], reference["series"]["li_solid"], rtol=1e-10
    )
    assert json.loads((run / "results.json").read_text())["status"] == "complete"
    assert _leftovers(run) == []

    # Newton failure mid-run: cut and retry down to the floor, then a clean stop that keeps
    # the last good state (the checkpoint's time does not move) and says why.
    config = failing / "config.toml"
    config.write_text(config.read_text().replace("dt_min = 0.001", "dt_min = 0.5"))
    rc, _out, err = _finish(_start(failing, "--resume", "--snes-max-it", "1"))
    assert rc == 2, err[-3000:]
    stop = json.loads((failing / "simulate" / "result.json").read_text())["stop_reason"]
    assert stop.startswith("step below dt_min=0.5 s")
    assert f"t={stopped['t']:.6g} s" in stop and "dt=" in stop and "residual norms [" in stop
    after = _state(failing / "simulate" / "checkpoint.h5")
    assert after["t"] == stopped["t"] and after["accepted"] == stopped["accepted"]
    assert after["rejected"] > stopped["rejected"]


def _small_function():
    from tomofem._fenics import MPI, dolfinx
    from tomofem.meshing import structured_tetmesh, to_dolfinx

    labels = np.zeros((4, 3, 3), np.uint8)
    labels[1:3] = 1
    dm = to_dolfinx(structured_tetmesh(labels), MPI.COMM_SELF)
    V = dolfinx.fem.functionspace(dm.mesh, ("Lagrange", 1))
    f = dolfinx.fem.Function(V)
    f.interpolate(lambda x: np.sin(x[0]) + x[1] * x[2])
    return dm, f


def test_failing_write_leaves_previous_checkpoint_intact(tmp_path):
    """A write that fails (file-size limit: EFBIG) leaves no partial file and the old one intact."""
    from tomofem.errors import RunFolderError
    from tomofem.io.checkpoint import read_checkpoint, write_checkpoint

    dm, f = _small_function()
    path = tmp_path / "checkpoint.h5"
    write_checkpoint(path, {"u": f}, {"t": 1.0}, dmesh=dm)
    before = path.read_bytes()
    f.x.array[:] += 1.0
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, hard))  # a "full disk" after 2 kB
    try:
        with pytest.raises(RunFolderError, match=r"checkpoint not written: cannot write .*"):
            write_checkpoint(path, {"u": f}, {"t": 2.0}, dmesh=dm)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.h5", "checkpoint.xdmf"]
    assert read_checkpoint(path, {"u": f}) == {"t": 1.0}


def test_write_into_missing_or_unwritable_folder_names_the_fix(tmp_path, monkeypatch):
    from tomofem.errors import RunFolderError
    from tomofem.io import atomic
    from tomofem.io.checkpoint import write_checkpoint

    _dm, f = _small_function()
    with pytest.raises(RunFolderError, match="exists and is writable"):
        write_checkpoint(tmp_path / "nowhere" / "c.h5", {"u": f}, {"t": 0.0})

    def full_disk(fd):  # ENOSPC when the data hits the disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    with pytest.raises(RunFolderError, match="free disk space"):
        write_checkpoint(tmp_path / "c.h5", {"u": f}, {"t": 0.0})
    assert list(tmp_path.iterdir()) == []


def test_corrupt_or_foreign_checkpoint_is_refused(tmp_path):
    from tomofem.errors import ConfigError, RunFolderError
    from tomofem.io.checkpoint import read_checkpoint, write_checkpoint

    dm, f = _small_function()
    good = tmp_path / "good.h5"
    write_checkpoint(good, {"u": f}, {"t": 0.0}, dmesh=dm)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[:600])
    with pytest.raises(RunFolderError, match="unreadable or truncated"):
        read_checkpoint(cut, {"u": f})
    with pytest.raises(RunFolderError, match="no checkpoint at"):
        read_checkpoint(tmp_path / "absent.h5", {"u": f})
    with pytest.raises(ConfigError, match="has no field 'v'"):
        read_checkpoint(good, {"v": f})
