"""What a run tells its reader (issue #15): the summary table, failed and interrupted runs."""

from __future__ import annotations

import json
import math
import os
import signal
from types import SimpleNamespace

import numpy as np
import pytest

from tomofem import pipeline
from tomofem.cli import EXIT_INTERRUPTED, main
from tomofem.config import SimulateConfig
from tomofem.homogenization.results import TortuosityResult

SMALL = ["--set", "image.shape=[12,12,12]", "--set", "image.radius=3", "-q"]
LEVELSET = ["--set", 'mesh.routes=["levelset"]']  # the fast route


def _tau(axis: int, tau: float, k_eff: float, method: str = "fem-p1") -> TortuosityResult:
    return TortuosityResult(
        method=method, axis=axis, tau=tau, k_eff=k_eff, porosity=0.44,
        connected_porosity=0.44, macmullin=1 / k_eff if k_eff else math.inf, flux_in=1.0,
        flux_out=1.0, length=1.0, area=1.0, unknowns=100, iterations=0,
        percolating=math.isfinite(tau), bounds={"reuss": 0.0, "voigt": 0.44,
                                                "hs_lower": None, "hs_upper": None},
    )  # fmt: skip


def _homogenize_results() -> dict:
    diag = np.diag([0.1873 * 1.593, 0.2585 * 1.02, 0.2815])
    tensor = SimpleNamespace(eigenvalues=list(np.diag(diag)), array=diag)
    return {
        "phase": "pore",
        "fem": {"x": _tau(0, 2.3495, 0.1873), "y": _tau(1, 1.7021, 0.2585)},
        "voxel": {"x": _tau(0, 2.3165, 0.19, "voxel-fvm"), "y": _tau(1, 1.8371, 0.2395)},
        "tensors": {"dirichlet": tensor},
        "rve": None,
    }


def test_summary_says_which_tau_to_use_and_what_the_bc_spread_means():
    res = pipeline.PipelineResult()
    h = _homogenize_results()
    res.quantities.extend(pipeline._quantities_homogenize(h))
    res.notes["homogenize"] = pipeline._notes_homogenize(h)
    rows = {q.name: q for q in res.quantities}
    assert rows["tau_x pore (FEM)"].value == 2.3495
    assert rows["tau_x pore (voxel FVM)"].value == 2.3165
    assert rows["tau_x pore recommended"].value == 2.3495  # FEM without the homogenize keys
    assert rows["BC spread x"].value == pytest.approx(0.593)
    assert "not an RVE along x" in rows["BC spread x"].note
    assert "within 5%" in rows["BC spread y"].note
    table = " ".join(res.table().split())  # the notes are wrapped
    assert "diagonal vs mixed-BC" not in table  # the old cryptic note
    assert "Which tau to use" in table and "FEM on the conformal mesh" in table
    assert "not a representative volume element (RVE) there" in table
    assert "Above 5% along x:" in table  # y (+2.0 %) is within


@pytest.mark.parametrize("where", ["top-level", "per-axis"])
def test_summary_uses_recommendation_fields_when_homogenize_gives_them(where):
    h = _homogenize_results()
    extra = {
        "tau_recommended": 2.2,
        "tau_error_discretisation": 0.05,
        "tau_error_geometry": 0.1,
        "recommended_reason": "Richardson-extrapolated FEM",
    }
    if where == "top-level":
        h.update({k: {"x": v} for k, v in extra.items()})
    else:
        h["recommended"] = {"x": extra}
    rows = {q.name: q for q in pipeline._quantities_homogenize(h)}
    rec = rows["tau_x pore recommended"]
    assert rec.value == 2.2
    assert "± 0.05 (discretisation)" in rec.note and "± 0.1 (geometry)" in rec.note
    assert rec.note.startswith("use this: estimate")
    assert rows["tau_y pore recommended"].value == 1.7021  # y has no fields: FEM
    assert "Richardson-extrapolated FEM" in " ".join(pipeline._notes_homogenize(h))


def _sim(stop_reason: str = "protocol complete", end: str = "duration 600.0 s"):
    series = {
        "time": [0.0, 300.0, 600.0],
        "dt": [0.0, 300.0, 300.0],
        "voltage": [4.28, 3.9, 3.7754],
        "capacity": [0.0, 3.2e-6, 6.4889e-06],
        "newton_iterations": [0, 4, 3],
    }
    return SimpleNamespace(
        series=series, capacity_mAh=6.4889e-06, one_c_current_A=3.8934e-08,
        stop_reason=stop_reason, step_ends=[f"step 0: {end}"], steps_accepted=2,
        steps_rejected=0,
    )  # fmt: skip


def test_summary_reports_charge_delivered_and_cell_capacity():
    res = pipeline.PipelineResult()
    cfg = SimulateConfig(c_rate=1.0, v_min=3.5, t_end=600.0)
    pipeline._record_simulation(res, _sim(), cfg)
    rows = {q.name: q for q in res.quantities}
    assert "capacity" not in rows  # the old, misleading name
    assert rows["charge delivered"].value == pytest.approx(6.4889e-06)
    assert rows["charge delivered"].unit == "mAh" and "16.7 % of the cell capacity" in (
        rows["charge delivered"].note
    )
    assert rows["cell capacity"].value == pytest.approx(3.8934e-05)
    assert rows["cell capacity"].unit == "mAh" and "1C = 3.893e-08 A" in rows["cell capacity"].note
    assert "reached before the 3.5 V cut-off" in rows["final voltage"].note
    assert "stopped early" in " ".join(res.table().split())
    done = pipeline.PipelineResult()
    pipeline._record_simulation(done, _sim(end="cut-off voltage 3.5 V"), cfg)
    assert "stopped early" not in done.table()


def test_failed_run_keeps_its_error_in_results_and_log(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["homogenize", "--voxel-only", "--phase", "cbd", *SMALL, "-o", str(out)])
    assert code == 2
    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "failed"
    err = doc["error"]
    assert err["stage"] == "homogenize" and err["type"] == "ImageError"
    assert "absent" in err["message"]
    stages = {s["name"]: s for s in doc["stages"]}
    assert stages["segment"]["status"] == "done"
    assert stages["homogenize"]["status"] == "failed"
    assert stages["homogenize"]["reason"].startswith("ImageError: ")
    log = (out / "log.txt").read_text()
    assert "ERROR" in log and "stage homogenize failed: ImageError" in log
    assert "absent" in log


def _interrupt(how: str):
    def mesh(labels, options, *args, **kwargs):
        if how == "SIGTERM":
            os.kill(os.getpid(), signal.SIGTERM)  # what a batch system sends at its time limit
        raise KeyboardInterrupt  # what Ctrl-C raises

    return mesh


@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM"])
def test_interrupt_during_meshing_is_recorded_and_the_run_continues(
    tmp_path, monkeypatch, capsys, how
):
    out = tmp_path / "run"
    cmd = ["mesh", *SMALL, *LEVELSET, "-o", str(out)]
    monkeypatch.setattr(pipeline, "mesh", _interrupt(how))
    assert main(cmd) == EXIT_INTERRUPTED
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored after the run
    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "interrupted"
    assert doc["error"]["stage"] == "mesh" and doc["error"]["type"] == "KeyboardInterrupt"
    signame = "SIGTERM" if how == "SIGTERM" else "Ctrl-C (SIGINT)"
    assert doc["error"]["message"] == f"interrupted by {signame} during stage mesh"
    assert {s["name"]: s["status"] for s in doc["stages"]} == {
        "segment": "done",
        "mesh": "interrupted",
    }
    assert doc["results"]["segment"]  # the finished stage's results and picture are kept
    assert (out / "slices.png").exists()
    assert f"interrupted by {signame} during stage mesh" in (out / "log.txt").read_text()
    err = capsys.readouterr().err
    assert f"tomofem simulate --resume {out}" in err and "without --force" in err
    monkeypatch.undo()

    # resume runs the stages again (there is no checkpoint to continue from) ...
    assert main(["simulate", "--resume", str(out), "-q"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "complete" and "error" not in doc
    assert {s["name"]: s["status"] for s in doc["stages"]} == {"segment": "done", "mesh": "done"}
    assert doc["results"]["mesh"]["route"]

    assert main(cmd) == 2  # a complete run is still never replaced without --force
    assert "already exists" in capsys.readouterr().err

    # ... and so does the same command again after an interrupt, without --force
    cmd = ["mesh", *SMALL, *LEVELSET, "-o", str(tmp_path / "again")]
    monkeypatch.setattr(pipeline, "mesh", _interrupt(how))
    assert main(cmd) == EXIT_INTERRUPTED
    monkeypatch.undo()
    assert main(cmd) == 0
    assert json.loads((tmp_path / "again" / "results.json").read_text())["status"] == "complete"


def test_sub_voxel_interfaces_only_from_grey_values():
    """A label image (segment.method = "labels", e.g. 0/85/170) has no partial volumes to use."""
    from types import SimpleNamespace

    from tomofem.config import RunConfig, SegmentConfig
    from tomofem.pipeline import _grey_source

    grey = SimpleNamespace(data=np.zeros((4, 4, 4)), label_names=None)
    named = SimpleNamespace(data=np.zeros((4, 4, 4)), label_names=("pore", "active"))
    assert _grey_source(grey, RunConfig()) is grey  # default: a tomogram segmented by Otsu
    labels_cfg = RunConfig(segment=SegmentConfig(method="labels", phases=3))
    assert _grey_source(grey, labels_cfg) is None
    assert _grey_source(named, RunConfig()) is None
    assert _grey_source(None, RunConfig()) is None
