"""Segmented voxels -> body-fitted conformal multi-phase tetrahedral meshes."""

from tomofem.meshing.options import MeshOptions
from tomofem.meshing.pipeline import ROUTES, mesh_image, register_route
from tomofem.meshing.tetmesh import (
    DolfinxMesh,
    MeshReport,
    TetMesh,
    check_mesh,
    structured_tetmesh,
    tag_facets,
    to_dolfinx,
)

__all__ = [
    "ROUTES",
    "DolfinxMesh",
    "MeshOptions",
    "MeshReport",
    "TetMesh",
    "check_mesh",
    "mesh_image",
    "register_route",
    "structured_tetmesh",
    "tag_facets",
    "to_dolfinx",
]
