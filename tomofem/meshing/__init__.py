"""Segmented voxels -> body-fitted conformal multi-phase tetrahedral meshes."""

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
    "DolfinxMesh",
    "MeshReport",
    "TetMesh",
    "check_mesh",
    "structured_tetmesh",
    "tag_facets",
    "to_dolfinx",
]
