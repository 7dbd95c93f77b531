"""Falling back to another meshing route is normal: info, not a warning (issue #15, item 7)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tomofem.errors import MeshingError
from tomofem.meshing import pipeline, structured_tetmesh
from tomofem.meshing.options import MeshOptions


def _labels() -> np.ndarray:
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[:, 3:, :] = 1
    return lab


def _broken(labels, spacing, options):
    raise MeshingError("surface: self-crossing surface; clean the image first")


def _voxels(labels, spacing, options):
    return structured_tetmesh(labels, spacing)


@pytest.fixture
def routes(monkeypatch):
    monkeypatch.setattr(pipeline, "ROUTES", {"broken": _broken, "voxels": _voxels})


def test_fallback_to_another_route_logs_info_only(routes, caplog):
    with caplog.at_level(logging.INFO, logger="tomofem.meshing"):
        tm = pipeline.mesh_image(_labels(), options=MeshOptions(routes=("broken", "voxels")))
    assert tm.route == "voxels"
    mine = [r for r in caplog.records if r.name == "tomofem.meshing.pipeline"]
    assert not [r for r in mine if r.levelno >= logging.WARNING], caplog.text
    (fallback,) = [r for r in mine if "broken failed" in r.getMessage()]
    assert fallback.levelno == logging.INFO
    assert "clean the image first (trying route voxels next)" in fallback.getMessage()


def test_warning_only_when_every_route_fails(routes, caplog):
    with caplog.at_level(logging.INFO, logger="tomofem.meshing"):
        with pytest.raises(MeshingError, match="every route failed"):
            pipeline.mesh_image(_labels(), options=MeshOptions(routes=("broken",)))
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "every route failed" in warning.getMessage()
    assert "broken: failed: surface: self-crossing" in warning.getMessage()


def test_default_chain_is_levelset_then_gmsh():
    assert list(pipeline.ROUTES)[:2] == ["levelset", "surface-nets-gmsh"]


def test_levelset_estimate_is_the_lattice_count_and_the_refusal_points_up():
    import re

    from tomofem.errors import ResourceError

    lab = np.zeros((20, 20, 20), np.uint8)
    lab[5:15, 5:15, :] = 1
    only = MeshOptions(routes=("levelset",))
    est = pipeline.route_estimates(lab, only)["levelset"]
    assert est == 12 * 8**3  # BCC lattice of 2.5 voxels: 8 cubes per axis, 12 cells each
    tm = pipeline.mesh_image(lab, options=only)
    assert est <= tm.num_cells <= 1.5 * est
    with pytest.raises(ResourceError, match="A LARGER size makes fewer cells") as err:
        pipeline.mesh_image(lab, options=MeshOptions(routes=("levelset",), max_cells=1000))
    size = float(re.search(r"interface_size = ([\d.]+) fits", str(err.value)).group(1))
    bigger = MeshOptions(routes=("levelset",), interface_size=size, max_size=size)
    assert size > 2.5 and pipeline.route_estimates(lab, bigger)["levelset"] <= 1000


def test_oversize_route_is_skipped_at_info(caplog):
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[5:15, 5:15, :] = 1
    est = pipeline.route_estimates(lab, MeshOptions())
    cap = (est["surface-nets-gmsh"] + est["levelset"]) // 2
    opts = MeshOptions(routes=("levelset", "surface-nets-gmsh"), max_cells=cap)
    big, small = sorted(est, key=est.get, reverse=True)
    with caplog.at_level(logging.INFO, logger="tomofem.meshing"):
        try:
            pipeline.mesh_image(lab, options=opts)
        except MeshingError:
            pass  # the remaining route may reject its own mesh above the cap
    (skip,) = [r for r in caplog.records if f"route {big} skipped" in r.getMessage()]
    assert skip.levelno == logging.INFO and "above max_cells" in skip.getMessage()
    assert est[small] <= cap
