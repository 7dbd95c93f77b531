"""The demo notebooks run in fast mode, serially and on two ranks, and check their own claims.

Each demo (``demos/demo_*.py``, jupytext light format) asserts its physics
claims itself; these tests run it as a user would (``python demo.py`` and
``mpirun -n 2 python demo.py``) with ``TOMOFEM_DEMO_FAST=1``, then read the
``summary.json`` rank 0 wrote and check that the two runs agree and that the
figures exist. A hang is a failure (timeout), never a wait.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tomofem.testing import mpirun_executable

REPO = Path(__file__).resolve().parents[2]
DEMOS = REPO / "demos"
SHARED = Path(os.environ.get("TOMOFEM_SHARED_DATA", REPO.parent / "shared" / "data"))

# demo -> (output folder, figures it must write)
CASES = {
    "demo_convergence": ("convergence", ["convergence.png"]),
    "demo_electrode_tensor": ("electrode_tensor", ["tortuosity.png", "bruggeman.png"]),
    "demo_rve": ("rve", ["rve_tau.png", "rve_bc_spread.png"]),
    "demo_rate_capability": ("rate_capability", ["rate_capability.png", "voltage.png"]),
    "demo_segmentation_uncertainty": (
        "segmentation_uncertainty",
        ["slices.png", "tau_interval.png"],
    ),
    "demo_lithiation_stress": (
        "lithiation_stress",
        ["von_mises_histogram.png", "particles.png", "hot_spots.png"],
    ),
}


def run_demo(
    name: str, out: Path, nprocs: int, timeout: float = 300.0, data: Path | None = None
) -> dict:
    """Run ``demos/<name>.py`` in fast mode; return the summary rank 0 wrote.

    ``data`` is the demo's ``TOMOFEM_SHARED_DATA`` (default: the environment's).
    """
    cmd = [sys.executable, str(DEMOS / f"{name}.py")]
    if nprocs > 1:
        cmd = [mpirun_executable(), "-n", str(nprocs), *cmd]
    env = dict(
        os.environ,
        TOMOFEM_DEMO_FAST="1",
        TOMOFEM_DEMO_OUT=str(out),
        OMP_NUM_THREADS="1",
        MPLBACKEND="Agg",
    )
    if data is not None:
        env["TOMOFEM_SHARED_DATA"] = str(data)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=out)
    assert proc.returncode == 0, (
        f"{name} on {nprocs} rank(s):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    folder, figures = CASES[name]
    for png in figures:
        path = out / folder / png
        assert path.stat().st_size > 1000, path
    return json.loads((out / folder / "summary.json").read_text())


def test_every_demo_is_covered():
    assert sorted(p.stem for p in DEMOS.glob("demo_*.py")) == sorted(CASES)


def test_demos_are_jupytext_light_notebooks():
    jupytext = pytest.importorskip("jupytext")
    for name in CASES:
        nb = jupytext.read(DEMOS / f"{name}.py")
        kinds = {c.cell_type for c in nb.cells}
        assert kinds == {"markdown", "code"}, name
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), name
        assert any("$" in c.source for c in nb.cells if c.cell_type == "markdown"), name


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Serial and 2-rank summaries, computed once per demo and data folder on first use.

    ``get(name, nprocs, data)`` runs with ``TOMOFEM_SHARED_DATA=data``; runs that
    see no ``electrode.tiff`` (synthetic stand-ins) share one cache entry.
    """
    cache: dict[tuple[str, int, str | None], dict] = {}

    def get(name: str, nprocs: int, data: Path | None = None) -> dict:
        folder = SHARED if data is None else data
        key = (name, nprocs, str(folder) if (folder / "electrode.tiff").exists() else None)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"{name}_np{nprocs}")
            cache[key] = run_demo(name, out, nprocs, data=data)
        return cache[key]

    return get


def test_convergence_orders(results):
    s = results("demo_convergence", 1)
    assert 1.6 <= s["slopes_vs_h"]["fem"] <= 2.5
    assert 0.7 <= s["slopes_vs_h"]["voxel"] <= 1.3
    p = results("demo_convergence", 2)
    assert p["ranks"] == 2
    assert p["slopes_vs_h"]["fem"] == pytest.approx(s["slopes_vs_h"]["fem"], rel=1e-6)
    assert p["fem"]["k_eff"] == pytest.approx(s["fem"]["k_eff"], rel=1e-7)
    assert p["voxel"]["error"] == pytest.approx(s["voxel"]["error"], rel=1e-5)


def test_electrode_tensor(results):
    s = results("demo_electrode_tensor", 1)
    if not (SHARED / "electrode.tiff").exists():
        assert s["real_data"] is False  # ran on the synthetic stand-in, said so
    assert all(t >= 1 for t in s["tau_fem_mixed"] + s["tau_voxel_6"])
    p = results("demo_electrode_tensor", 2)
    assert p["tau_fem_mixed"] == pytest.approx(s["tau_fem_mixed"], rel=1e-6)
    assert np.ravel(p["K_dirichlet"]) == pytest.approx(np.ravel(s["K_dirichlet"]), abs=1e-7)
    assert p["bruggeman_alpha_subvolumes"] == pytest.approx(
        s["bruggeman_alpha_subvolumes"], rel=1e-6
    )


def test_rve(results):
    s = results("demo_rve", 1)
    spreads = [x["bc_spread"] for x in s["bc_spread"]["sizes"]]
    assert spreads[-1] < spreads[0]
    p = results("demo_rve", 2)
    assert [x["bc_spread"] for x in p["bc_spread"]["sizes"]] == pytest.approx(spreads, rel=1e-5)


def test_rate_capability(results):
    s = results("demo_rate_capability", 1)
    caps = [s["runs"][str(c)]["capacity_fraction"] for c in s["c_rates"]]
    assert caps == sorted(caps, reverse=True)
    p = results("demo_rate_capability", 2)
    got = [p["runs"][str(c)]["capacity_fraction"] for c in p["c_rates"]]
    assert got == pytest.approx(caps, rel=1e-6)


def test_segmentation_uncertainty(results):
    s = results("demo_segmentation_uncertainty", 1)
    w = {k: v["tau_p95"] - v["tau_p05"] for k, v in s["intervals"].items()}
    assert w["correlated"] > w["independent"] > 0
    p = results("demo_segmentation_uncertainty", 2)
    assert p["intervals"] == s["intervals"]


def test_lithiation_stress(results):
    s = results("demo_lithiation_stress", 1)
    rows = s["particles"]
    assert rows and all(r["strain_energy"] > 0 for r in rows)
    assert [Path(f).name for f in s["vtx"]] == ["displacement.bp", "stress.bp"]
    assert all(any(Path(f).iterdir()) for f in s["vtx"])
    assert all(r["max_von_mises"] >= r["p99_von_mises"] > 0 for r in rows)
    assert sum(s["histogram_von_mises"]["volume"]) == pytest.approx(
        sum(r["volume"] for r in rows), rel=1e-9
    )
    p = results("demo_lithiation_stress", 2)
    assert p["slice_von_mises_max"] == pytest.approx(s["slice_von_mises_max"], rel=1e-6)
    assert [r["p99_von_mises"] for r in p["particles"]] == pytest.approx(
        [r["p99_von_mises"] for r in rows], rel=1e-6
    )
    assert [r["contact_area"] for r in p["particles"]] == pytest.approx(
        [r["contact_area"] for r in rows], rel=1e-9
    )


def test_lithiation_stress_without_data(results, tmp_path):
    """The synthetic stand-in has solid bodies not joined to the collector (3 for its
    seed): they are left out and reported, the same on one and two ranks."""
    missing = tmp_path / "no_data"
    s = results("demo_lithiation_stress", 1, missing)
    assert s["real_data"] is False
    assert s["floating_bodies"] >= 1 and s["floating_volume"] > 0
    assert s["particles"] and all(r["strain_energy"] > 0 for r in s["particles"])
    p = results("demo_lithiation_stress", 2, missing)
    assert p["floating_bodies"] == s["floating_bodies"]
    assert p["floating_volume"] == pytest.approx(s["floating_volume"], rel=1e-12)
    assert p["slice_von_mises_max"] == pytest.approx(s["slice_von_mises_max"], rel=1e-6)
