"""Body-fitted particles-in-a-box meshes built with gmsh (verification and demos).

Image-based meshes come from :mod:`tomofem.meshing`; these analytic geometries
(spheres, possibly cut by the box faces) give exact interfaces for tests such
as the single-particle diffusion check, and use the same tags.
"""

from __future__ import annotations

import numpy as np

from tomofem import tags
from tomofem.errors import MeshingError
from tomofem.meshing import TetMesh, tag_facets


def particles_in_box(
    centres: np.ndarray,
    radii: np.ndarray,
    box: np.ndarray,
    h: float,
    h_particle: float | None = None,
) -> TetMesh:
    """Tetrahedral mesh of spheres (active) inside a box (pore), on the calling rank.

    Parameters
    ----------
    centres, radii
        Sphere centres (n, 3) and radii (n,) in mesh units; spheres may overlap
        each other and the box faces (they are clipped to the box).
    box
        Lower and upper corners, shape (2, 3).
    h, h_particle
        Target element size in the pore and inside the particles (default ``h``).

    Returns
    -------
    TetMesh
        Cells tagged ``Phase.PORE`` / ``Phase.ACTIVE``, facets tagged by
        :func:`tomofem.meshing.tag_facets`.
    """
    import gmsh

    box = np.asarray(box, dtype=float)
    centres = np.atleast_2d(np.asarray(centres, dtype=float))
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    if len(centres) != len(radii) or np.any(radii <= 0):
        raise MeshingError("particles_in_box: need one positive radius per centre")
    hp = h if h_particle is None else h_particle
    init_here = not gmsh.isInitialized()
    if init_here:
        gmsh.initialize()
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("particles")
        occ = gmsh.model.occ
        ext = box[1] - box[0]
        b = occ.addBox(*box[0], *ext)
        balls = [occ.addSphere(*c, r) for c, r in zip(centres, radii, strict=True)]
        if len(balls) > 1:
            fused, _ = occ.fuse([(3, balls[0])], [(3, s) for s in balls[1:]])
        else:
            fused = [(3, balls[0])]
        inside, _ = occ.intersect(fused, [(3, occ.addBox(*box[0], *ext))])
        _, children = occ.fragment([(3, b)], inside)
        occ.synchronize()
        # children[0]: pieces of the box; children[1:]: pieces of the particles
        solid_vols = sorted({t for ch in children[1:] for _, t in ch})
        pore_vols = sorted({t for _, t in children[0]} - set(solid_vols))
        gmsh.model.addPhysicalGroup(3, pore_vols, int(tags.Phase.PORE))
        gmsh.model.addPhysicalGroup(3, solid_vols, int(tags.Phase.ACTIVE))
        gmsh.model.mesh.setSize(gmsh.model.getEntities(0), h)
        for tag in solid_vols:
            pts = gmsh.model.getBoundary([(3, tag)], combined=False, recursive=True)
            gmsh.model.mesh.setSize([p for p in pts if p[0] == 0], hp)
        gmsh.option.setNumber("Mesh.MeshSizeMax", h)
        gmsh.model.mesh.generate(3)
        node_tags, coords, _ = gmsh.model.mesh.getNodes()
        points = coords.reshape(-1, 3)
        index = np.zeros(int(node_tags.max()) + 1, dtype=np.int64)
        index[node_tags.astype(np.int64)] = np.arange(len(node_tags))
        cells, phase = [], []
        for ptag, vols in ((tags.Phase.PORE, pore_vols), (tags.Phase.ACTIVE, solid_vols)):
            for v in vols:
                _, _, conn = gmsh.model.mesh.getElements(3, v)
                c = index[np.asarray(conn[0], dtype=np.int64)].reshape(-1, 4)
                cells.append(c)
                phase.append(np.full(len(c), int(ptag), dtype=np.int32))
    finally:
        if init_here:
            gmsh.finalize()
    cells = np.concatenate(cells)
    phase = np.concatenate(phase)
    used = np.unique(cells)
    remap = np.full(len(points), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    points, cells = points[used], remap[cells]
    facets, ftags = tag_facets(points, cells, phase, box)
    return TetMesh(points, cells, phase, facets, ftags, box, route="gmsh-particles")
