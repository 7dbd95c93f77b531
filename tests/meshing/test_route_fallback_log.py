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
