"""Checks of distributed meshes equal the serial checks; the distributed connectivity guard."""

from __future__ import annotations

import numpy as np
import pytest

from tomofem.meshing import check_mesh, to_dolfinx
from tomofem.meshing.connectivity import compare_connectivity
from tomofem.meshing.distributed import distributed_levelset
from tomofem.meshing.distributed_checks import (
    check_distributed,
    image_spanning,
    mesh_spanning,
    percolation_difference,
)
from tomofem.meshing.levelset import LevelSetOptions, mesh_levelset


def _packing() -> np.ndarray:
    from tomofem.image.synthetic import add_binder, random_sphere_packing

    lab = random_sphere_packing(24, 0.6, 4.0, seed=5).astype(np.int8)
    return add_binder(lab, 0.1, 1.5).astype(np.int8)


def _throat() -> np.ndarray:
    """Pore slabs at both x ends joined by a one-voxel throat: the default lattice closes it."""
    lab = np.ones((16, 9, 9), np.int8)
    lab[:4] = 0
    lab[-4:] = 0
    lab[4:12, 4, 4] = 0
    return lab


@pytest.mark.mpi
def test_check_distributed_equals_check_mesh(comm):
    """The serial mesh handed to DOLFINx measures the same on any number of ranks."""
    lab = _packing()
    tm, _ = mesh_levelset(lab, 1.0, LevelSetOptions(connectivity="smoothed"))
    ref = check_mesh(tm)
    rep = check_distributed(to_dolfinx(tm if comm.rank == 0 else None, comm))
    assert rep.num_cells == ref.num_cells and rep.num_vertices == ref.num_vertices
    assert rep.inverted_cells == 0 and rep.untagged_interface_facets == 0
    assert rep.dihedral_histogram == ref.dihedral_histogram
    assert rep.min_dihedral_deg == pytest.approx(ref.min_dihedral_deg, rel=1e-12)
    assert rep.box_volume_error == pytest.approx(ref.box_volume_error, abs=1e-12)
    assert set(rep.volume_by_phase) == set(ref.volume_by_phase)
    for p, v in ref.volume_by_phase.items():
        assert rep.volume_by_phase[p] == pytest.approx(v, rel=1e-12)
    assert set(rep.area_by_tag) == set(ref.area_by_tag)
    for t, a in ref.area_by_tag.items():
        assert rep.area_by_tag[t] == pytest.approx(a, rel=1e-12)


@pytest.mark.mpi
@pytest.mark.parametrize("case", ["packing", "throat"])
def test_mesh_spanning_equals_serial(comm, case):
    """Spanning per phase and axis from distributed components equals the serial count."""
    lab = _packing() if case == "packing" else _throat()
    tm, _ = mesh_levelset(lab, 1.0, LevelSetOptions(connectivity="smoothed"))
    ref = {
        p.label + 1: [f > 0 for f in p.mesh_spanning_fraction]
        for p in compare_connectivity(lab, tm).phases
    }
    got = mesh_spanning(to_dolfinx(tm if comm.rank == 0 else None, comm))
    assert got == ref
    if case == "throat":  # the smoothed default lattice closes the throat: the check sees it
        assert ref[1] == [False, True, True]
        assert "label 0 spans x in the image" in percolation_difference(image_spanning(lab), got)


@pytest.mark.mpi
def test_distributed_guard_reopens_a_throat_across_the_slab_face(comm):
    """Default connectivity="dual": the closed throat is seen on every rank and re-meshed finer."""
    lab = _throat()
    dm, stats = distributed_levelset(lab, 1.0, LevelSetOptions(), comm)
    assert stats.rejected and "label 0 spans x in the image, not in the mesh" in stats.rejected[0]
    assert stats.percolation_differences == ""
    assert stats.options["lattice_step"] < LevelSetOptions().lattice_step
    assert mesh_spanning(dm) == image_spanning(lab)
    rep = check_distributed(dm)
    assert rep.inverted_cells == 0 and rep.untagged_interface_facets == 0


def test_guard_skipped_with_a_loader_and_smoothed():
    """No whole image (a block loader) or connectivity="smoothed": one mesh, nothing rejected."""
    from mpi4py import MPI

    lab = _throat()
    _, stats = distributed_levelset(
        lambda idx: lab[idx], 1.0, LevelSetOptions(), MPI.COMM_SELF, shape=lab.shape
    )
    assert stats.rejected == [] and stats.options["lattice_step"] == 2.5
    smoothed = LevelSetOptions(connectivity="smoothed")
    _, stats = distributed_levelset(lab, 1.0, smoothed, MPI.COMM_SELF)
    assert stats.rejected == []
