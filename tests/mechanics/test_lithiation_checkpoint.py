"""Lithiation stress from a discharge checkpoint: the stored solid field drives the solve.

A checkpoint holds the mesh and the solid unknown ``w_s`` (logit of the
stoichiometry) by input vertex. Written on the ranks of the test and read back,
the stress must equal that of a direct solve with the same stoichiometry field.
"""

import numpy as np
import pytest

from tomofem._fenics import MPI, dolfinx
from tomofem.config import MechanicsConfig
from tomofem.errors import ConfigError
from tomofem.forms.elasticity import lithiation_strain
from tomofem.io.checkpoint import write_checkpoint
from tomofem.materials.mechanics import nmc811
from tomofem.meshing import structured_tetmesh, to_dolfinx
from tomofem.pipeline import _mechanics_phases, lithiation_stress_from_checkpoint
from tomofem.post.particle_stress import stress_fields
from tomofem.solvers.lithiation_stress import solve_lithiation_stress
from tomofem.tags import BoxFace, Phase

ACTIVE = int(Phase.ACTIVE)


def _x(X):
    """Stoichiometry varying along x and z (0.45..0.85)."""
    return 0.45 + 0.05 * X[0] + 0.03 * X[2]


def _mesh(comm):
    lab = np.full((6, 5, 4), 2, dtype=np.uint8)  # label 2 -> CBD (phase 3)
    lab[1:5, 1:4, 0:3] = 1  # active block (phase 2), touching the collector face zmin
    lab[:, :, 3][lab[:, :, 3] == 2] = 0  # a pore layer on top, partly
    lab[0, 0, 3] = 2
    return to_dolfinx(structured_tetmesh(lab), comm)


def _checkpoint(path, comm, with_field=True):
    dm = _mesh(comm)
    tdim = 3
    imap = dm.mesh.topology.index_map(tdim)
    phase = np.full(imap.size_local + imap.num_ghosts, -1)
    phase[dm.cell_tags.indices] = dm.cell_tags.values
    sub, _, _, _ = dolfinx.mesh.create_submesh(
        dm.mesh, tdim, np.flatnonzero(phase == ACTIVE).astype(np.int32)
    )
    V = dolfinx.fem.functionspace(sub, ("Lagrange", 1))
    f = dolfinx.fem.Function(V)
    x = _x(V.tabulate_dof_coordinates().T)
    f.x.array[:] = np.log(x / (1 - x))
    fields = {"w_s": f} if with_field else {"phi_s": f}
    write_checkpoint(path, fields, {"time": 600.0}, dmesh=dm, comm=comm)
    return dm


@pytest.mark.mpi
def test_checkpoint_field_gives_the_direct_solve(tmp_path_factory):
    comm = MPI.COMM_WORLD
    folder = comm.bcast(str(tmp_path_factory.mktemp("ckpt")) if comm.rank == 0 else None)
    path = f"{folder}/checkpoint.h5"
    dm = _checkpoint(path, comm)
    cfg = MechanicsConfig(checkpoint=path, collector_face="zmin")
    got = lithiation_stress_from_checkpoint(path, cfg, comm, None)
    assert got["x_min"] == pytest.approx(0.45 + 0.05 * 1 + 0.0, abs=1e-12)
    assert got["x_max"] == pytest.approx(0.45 + 0.05 * 5 + 0.03 * 3, abs=1e-12)
    assert got["x_stress_free"] == got["x_mean"]
    nmc = nmc811()
    omega, c_max = nmc["Partial molar volume [m3.mol-1]"], nmc["Maximum concentration [mol.m-3]"]

    def eig(solid):
        V = dolfinx.fem.functionspace(solid.mesh, ("Lagrange", 1))
        x = dolfinx.fem.Function(V)
        x.interpolate(lambda X: _x(X))
        return {ACTIVE: lithiation_strain(omega, c_max * x, c_max * got["x_mean"])}

    sol = solve_lithiation_stress(
        dm.mesh, dm.cell_tags, _mechanics_phases(cfg), eig, collector=BoxFace.ZMIN
    )
    vm = stress_fields(sol)["von_mises"].x.array
    peak = comm.allreduce(float(vm[: vm.size].max(initial=0.0)), op=MPI.MAX)
    assert got["von_mises"]["max"] > 1e6  # a gradient of x of 0.3 stresses NMC by MPa
    # the CBD may hold the global peak; the table is over the active phase only
    assert got["von_mises"]["max"] <= peak * (1 + 1e-9)
    assert got["von_mises"]["max"] >= got["von_mises"]["p99"] > 0
    assert got["hydrostatic"]["min"] < 0 < got["hydrostatic"]["max"]
    # same field, same stresses: compare the active-phase peak with a direct evaluation
    active_cells = np.flatnonzero(sol.solid.cell_phase == ACTIVE)
    Q = stress_fields(sol)["von_mises"].function_space
    n = Q.mesh.topology.index_map(3).size_local
    own = active_cells[active_cells < n].astype(np.int32)
    direct = comm.allreduce(float(vm[Q.dofmap.list[own].ravel()].max(initial=0.0)), op=MPI.MAX)
    assert got["von_mises"]["max"] == pytest.approx(direct, rel=1e-7)


@pytest.mark.mpi
def test_checkpoint_without_solid_field_is_refused(tmp_path_factory):
    comm = MPI.COMM_WORLD
    folder = comm.bcast(str(tmp_path_factory.mktemp("ckpt2")) if comm.rank == 0 else None)
    path = f"{folder}/checkpoint.h5"
    _checkpoint(path, comm, with_field=False)
    with pytest.raises(ConfigError, match="w_s"):
        lithiation_stress_from_checkpoint(path, MechanicsConfig(), comm, None)


def test_stage_adds_the_lithiation_stress_rows(tmp_path, capsys):
    import json

    from tomofem.cli import main

    path = tmp_path / "checkpoint.h5"
    _checkpoint(path, MPI.COMM_WORLD)
    out = tmp_path / "run"
    args = ["--set", "image.shape=[16,16,16]", "--set", "image.radius=4"]
    args += ["--set", f'mechanics.checkpoint="{path}"', "--set", 'mechanics.collector_face="zmin"']
    assert main(["mechanics", "-q", *args, "-o", str(out)]) == 0
    ls = json.loads((out / "results.json").read_text())["results"]["mechanics"]["lithiation_stress"]
    assert ls["von_mises"]["p99"] > 0 and ls["x_min"] == pytest.approx(0.5)
    assert all((out / "mechanics" / name).is_dir() for name in ("displacement.bp", "stress.bp"))
    assert "lithiation stress, von Mises p99" in capsys.readouterr().out


def test_checkpoint_path_is_relative_to_the_config_file(tmp_path):
    from tomofem.config import load_config

    (tmp_path / "cfg").mkdir()
    cfg_file = tmp_path / "cfg" / "run.toml"
    cfg_file.write_text('[mechanics]\ncheckpoint = "../d1/simulate/checkpoint.h5"\n')
    cfg = load_config(cfg_file)
    assert cfg.mechanics.checkpoint == str(tmp_path / "d1" / "simulate" / "checkpoint.h5")
