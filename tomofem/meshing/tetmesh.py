"""The tetrahedral mesh every meshing route produces, its tags, checks and hand-off.

A route (surface nets + gmsh, level-set cutting, ...) returns plain numpy arrays
on one rank: a :class:`TetMesh`. :func:`tag_facets` derives the interface and
box-face facet tags from the cell phases alone, so every route tags the same
way; :func:`check_mesh` measures conformity, watertightness and quality;
:func:`to_dolfinx` distributes the mesh and its tags over a communicator with
shared-facet ghosting (interface ``dS`` integrals need both cells on a rank).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tomofem import tags
from tomofem.errors import MeshingError

log = logging.getLogger(__name__)

# Local vertex indices of the face opposite vertex i of a tetrahedron.
_TET_FACES = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
_TET_EDGES = np.array([[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]])


@dataclass(frozen=True)
class TetMesh:
    """A conformal multi-phase tetrahedral mesh of a box, held on one rank.

    Attributes
    ----------
    points
        Vertex coordinates, shape (N, 3), in physical units (voxel size applied).
    cells
        Vertex indices of each tetrahedron, shape (M, 4).
    cell_tags
        Phase id of each cell (``tomofem.tags.Phase``), or component tag.
    facets
        Vertex indices of tagged triangles, shape (F, 3).
    facet_tags
        Tag of each facet: ``tags.interface_tag`` or ``tags.boundary_tag``.
    box
        Lower and upper corners of the box, shape (2, 3).
    phase_names
        Name of each phase id, e.g. ``{1: "pore", 2: "solid"}``.
    route
        Which meshing route produced the mesh (for logs and results).
    """

    points: npt.NDArray[np.float64]
    cells: npt.NDArray[np.int64]
    cell_tags: npt.NDArray[np.int32]
    facets: npt.NDArray[np.int64]
    facet_tags: npt.NDArray[np.int32]
    box: npt.NDArray[np.float64]
    phase_names: dict[int, str] = field(default_factory=dict)
    route: str = ""

    @property
    def num_vertices(self) -> int:
        """Number of vertices."""
        return int(self.points.shape[0])

    @property
    def num_cells(self) -> int:
        """Number of tetrahedra."""
        return int(self.cells.shape[0])


def tet_volumes(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Signed volumes of tetrahedra (positive for right-handed vertex order)."""
    p = points[cells]
    return (
        np.einsum("ij,ij->i", p[:, 1] - p[:, 0], np.cross(p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]))
        / 6.0
    )


def triangle_areas(points: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Areas of triangles."""
    p = points[tris]
    return 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)


def min_dihedral_angles(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Smallest dihedral angle of each tetrahedron, in degrees."""
    p = points[cells]
    # Outward-ish face normals (face i opposite vertex i); dihedral at edge (a,b)
    # is pi minus the angle between the normals of the two faces containing it.
    normals = np.empty((len(cells), 4, 3))
    for i, (a, b, c) in enumerate(_TET_FACES):
        n = np.cross(p[:, b] - p[:, a], p[:, c] - p[:, a])
        # orient away from the opposite vertex
        s = np.sign(np.einsum("ij,ij->i", n, p[:, a] - p[:, i]))
        normals[:, i] = n * s[:, None]
    normals /= np.maximum(np.linalg.norm(normals, axis=2, keepdims=True), 1e-300)
    # the dihedral at an edge is pi - arccos(n_i . n_j), increasing in the dot
    # product: the smallest angle comes from the smallest dot product, so one
    # arccos per cell instead of six (the same value, bit for bit)
    lowest = None
    for a, b in _TET_EDGES:
        # faces containing edge (a,b) are those opposite the other two vertices
        i, j = (k for k in range(4) if k not in (a, b))
        dot = np.einsum("ij,ij->i", normals[:, i], normals[:, j])
        lowest = dot if lowest is None else np.minimum(lowest, dot)
    return np.degrees(np.pi - np.arccos(np.clip(lowest, -1.0, 1.0)))


# Edges of the regular tetrahedron of unit edge (columns), the reference of SICN
_REGULAR_INV = np.linalg.inv(
    np.array([[1.0, 0.5, 0.5], [0.0, np.sqrt(3) / 2, np.sqrt(3) / 6], [0.0, 0.0, np.sqrt(2 / 3)]])
)


def sicn(points: np.ndarray, cells: np.ndarray, chunk: int = 2**20) -> np.ndarray:
    """Signed inverse condition number of each tetrahedron (gmsh's SICN): 1 regular, <= 0 inverted.

    ``3 / (|S|_F |S^-1|_F)`` with the sign of ``det S``, where ``S`` maps the
    regular tetrahedron onto the cell (for straight-sided tetrahedra gmsh's
    ``getElementQualities(..., "minSICN")`` is this value, to round-off).
    """
    out = np.empty(len(cells))
    for s in range(0, len(cells), chunk):
        x = points[cells[s : s + chunk]]
        jac = np.stack([x[:, 1] - x[:, 0], x[:, 2] - x[:, 0], x[:, 3] - x[:, 0]], axis=2)
        m = jac @ _REGULAR_INV
        det = np.linalg.det(m)
        ok = det != 0.0
        q = np.zeros(len(m))
        inv = np.linalg.inv(m[ok])
        q[ok] = 3.0 / (np.linalg.norm(m[ok], axis=(1, 2)) * np.linalg.norm(inv, axis=(1, 2)))
        out[s : s + chunk] = q * np.sign(det)
    return out


def _unique_faces(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All faces (sorted vertex triples), the face index of each (cell, local face), counts."""
    uniq, inverse, counts = unique_triangles(cells[:, _TET_FACES].reshape(-1, 3))
    return uniq, inverse.reshape(-1, 4), counts


def unique_triangles(tris: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct triangles (sorted vertex triples), the index of each input among them, counts."""
    faces = np.sort(tris, axis=1)
    # Same result as np.unique(faces, axis=0, ...) but about 4x faster on
    # millions of faces: sort on two int64 keys (v0 * n + v1, v2) instead of rows.
    n = int(faces.max()) + 1 if faces.size else 1
    key = faces[:, 0].astype(np.int64) * n + faces[:, 1]
    order = np.lexsort((faces[:, 2], key))
    ks, vs = key[order], faces[order, 2]
    start = np.ones(len(order), dtype=bool)
    start[1:] = (ks[1:] != ks[:-1]) | (vs[1:] != vs[:-1])
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = np.cumsum(start) - 1
    counts = np.diff(np.r_[np.flatnonzero(start), len(order)])
    return faces[order[start]], inverse, counts


def box_face_of(points: np.ndarray, tris: np.ndarray, box: np.ndarray, tol: float) -> np.ndarray:
    """Box face (``tags.BoxFace`` value) each triangle lies on, or -1 if none."""
    out = np.full(len(tris), -1, dtype=np.int64)
    p = points[tris]  # (F, 3 vertices, 3 coords)
    for axis in range(3):
        for upper in (False, True):
            plane = box[int(upper), axis]
            on = np.all(np.abs(p[:, :, axis] - plane) <= tol, axis=1)
            out[on & (out < 0)] = int(tags.BoxFace.of(axis, upper))
    return out


def tag_facets(
    points: np.ndarray,
    cells: np.ndarray,
    cell_phase: np.ndarray,
    box: np.ndarray,
    tol: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Facets between different phases and on the box faces, with their tags.

    Parameters
    ----------
    points, cells
        The mesh.
    cell_phase
        Phase id of each cell (``tags.Phase`` values, 1..9).
    box
        Lower and upper box corners, shape (2, 3); boundary facets must lie on it.
    tol
        Distance within which a vertex counts as on a box plane; default 1e-9
        times the box diagonal.

    Returns
    -------
    facets, facet_tags
        Triangles (F, 3) and their tags. Interior facets between equal phases
        are not returned.

    Raises
    ------
    MeshingError
        If a boundary facet does not lie on a box face (the mesh is not
        watertight) or a facet is shared by more than two cells (not conformal).
    """
    box = np.asarray(box, dtype=float)
    tol = 1e-9 * float(np.linalg.norm(box[1] - box[0])) if tol is None else tol
    uniq, face_of, counts = _unique_faces(cells)
    if np.any(counts > 2):
        raise MeshingError(
            f"tagging: {int(np.sum(counts > 2))} facets are shared by more than two tetrahedra; "
            "the volume mesh is not conformal (re-mesh, or report the input that caused it)"
        )
    owner = np.full((len(uniq), 2), -1, dtype=np.int64)
    flat_face = face_of.ravel()
    flat_cell = np.repeat(np.arange(len(cells)), 4)
    order = np.argsort(flat_face, kind="stable")
    ff, fc = flat_face[order], flat_cell[order]
    first = np.r_[True, ff[1:] != ff[:-1]]
    owner[ff[first], 0] = fc[first]
    owner[ff[~first], 1] = fc[~first]

    interior = owner[:, 1] >= 0
    pa = cell_phase[owner[:, 0]]
    pb = np.where(interior, cell_phase[np.maximum(owner[:, 1], 0)], 0)
    iface = interior & (pa != pb)
    lo, hi = np.minimum(pa, pb), np.maximum(pa, pb)
    itag = 100 + 10 * lo[iface] + hi[iface]

    bnd = ~interior
    bface = box_face_of(points, uniq[bnd], box, tol)
    if np.any(bface < 0):
        raise MeshingError(
            f"tagging: {int(np.sum(bface < 0))} boundary facets do not lie on the box faces; the "
            "mesh has holes or interior voids (not watertight)"
        )
    btag = 1000 + 10 * pa[bnd] + bface
    facets = np.concatenate([uniq[iface], uniq[bnd]])
    ftags = np.concatenate([itag, btag]).astype(np.int32)
    return facets.astype(np.int64), ftags


@dataclass(frozen=True)
class MeshReport:
    """Conformity, watertightness, accuracy and quality figures of a :class:`TetMesh`.

    Attributes
    ----------
    num_vertices, num_cells
        Sizes.
    volume_by_phase
        Summed cell volume per phase id [length^3].
    box_volume_error
        (sum of cell volumes - box volume) / box volume [-]; round-off for a watertight mesh.
    area_by_tag
        Summed facet area per facet tag [length^2].
    inverted_cells
        Cells with non-positive volume.
    nonmanifold_facets
        Facets shared by more than two cells.
    untagged_interface_facets
        Facets between different phases that carry no interface tag.
    min_dihedral_deg
        Smallest dihedral angle over the mesh [degrees].
    frac_below_5deg, count_below_1deg
        Fraction of cells whose smallest dihedral is below 5 degrees; count below 1 degree.
    dihedral_histogram
        Counts of min-dihedral angles in the bins ``dihedral_bins`` [degrees].
    """

    num_vertices: int
    num_cells: int
    volume_by_phase: dict[int, float]
    box_volume_error: float
    area_by_tag: dict[int, float]
    inverted_cells: int
    nonmanifold_facets: int
    untagged_interface_facets: int
    min_dihedral_deg: float
    frac_below_5deg: float
    count_below_1deg: int
    dihedral_histogram: list[int]
    dihedral_bins: list[float]

    @property
    def conformal(self) -> bool:
        """True if no facet is shared by more than two cells and none is inverted."""
        return self.nonmanifold_facets == 0 and self.inverted_cells == 0

    def volume_fraction(self, phase: int) -> float:
        """Volume fraction of ``phase`` in the mesh."""
        return self.volume_by_phase.get(phase, 0.0) / sum(self.volume_by_phase.values())


def check_mesh(tm: TetMesh) -> MeshReport:
    """Measure a :class:`TetMesh`: volumes, areas, conformity, tags and quality."""
    vols = tet_volumes(tm.points, tm.cells)
    phases = np.unique(tm.cell_tags)
    vol_by = {int(p): float(vols[tm.cell_tags == p].sum()) for p in phases}
    box_vol = float(np.prod(tm.box[1] - tm.box[0]))
    uniq, face_of, counts = _unique_faces(tm.cells)
    # facets between different phases: compare the phases of the two owners
    flat_face = face_of.ravel()
    phase_rep = np.repeat(tm.cell_tags, 4)
    pmin = np.full(len(uniq), np.iinfo(np.int64).max)
    pmax = np.full(len(uniq), np.iinfo(np.int64).min)
    np.minimum.at(pmin, flat_face, phase_rep)
    np.maximum.at(pmax, flat_face, phase_rep)
    iface = uniq[(counts == 2) & (pmin != pmax)]
    tagged = {
        tuple(f)
        for f in np.sort(tm.facets, axis=1)[(tm.facet_tags >= 100) & (tm.facet_tags < 1000)]
    }
    untagged = sum(1 for f in map(tuple, iface) if f not in tagged)
    areas = triangle_areas(tm.points, tm.facets)
    area_by = {int(t): float(areas[tm.facet_tags == t].sum()) for t in np.unique(tm.facet_tags)}
    # in chunks: all cells at once held ~40 doubles per cell (9 GB at 15M cells)
    chunks = range(0, tm.num_cells, 2**18)
    dih = np.concatenate(
        [min_dihedral_angles(tm.points, tm.cells[i : i + 2**18]) for i in chunks] or [np.zeros(0)]
    )
    bins = [0.0, 1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.6]
    hist, _ = np.histogram(dih, bins=bins)
    return MeshReport(
        num_vertices=tm.num_vertices,
        num_cells=tm.num_cells,
        volume_by_phase=vol_by,
        box_volume_error=(float(vols.sum()) - box_vol) / box_vol,
        area_by_tag=area_by,
        inverted_cells=int(np.sum(vols <= 0)),
        nonmanifold_facets=int(np.sum(counts > 2)),
        untagged_interface_facets=int(untagged),
        min_dihedral_deg=float(dih.min()) if len(dih) else 0.0,
        frac_below_5deg=float(np.mean(dih < 5.0)) if len(dih) else 0.0,
        count_below_1deg=int(np.sum(dih < 1.0)),
        dihedral_histogram=[int(h) for h in hist],
        dihedral_bins=bins,
    )


@dataclass
class DolfinxMesh:
    """A distributed DOLFINx mesh with its phase and facet tags.

    Attributes
    ----------
    mesh
        ``dolfinx.mesh.Mesh`` with shared-facet ghosting.
    cell_tags, facet_tags
        ``dolfinx.mesh.MeshTags`` of dimension 3 and 2 (tags from :mod:`tomofem.tags`).
    phase_names
        Name of each phase id.
    box
        Lower and upper box corners, shape (2, 3).
    """

    mesh: object
    cell_tags: object
    facet_tags: object
    phase_names: dict[int, str]
    box: np.ndarray


def to_dolfinx(tm: TetMesh | None, comm, rank: int = 0) -> DolfinxMesh:
    """Distribute a :class:`TetMesh` held on ``rank`` over ``comm``.

    Parameters
    ----------
    tm
        The mesh on ``rank``; ignored (may be ``None``) on the other ranks.
    comm
        MPI communicator.
    rank
        The rank that holds the mesh.

    Notes
    -----
    Cells are partitioned with ``GhostMode.shared_facet`` so that both cells of
    every interior facet are present on a rank owning the facet: interface
    integrals (``dS``) are then correct across process boundaries. Cell and
    facet tags are sent to the owning ranks by their vertex lists
    (``dolfinx.io.distribute_entity_data``), so tagging does not depend on the
    partition.
    """
    from tomofem._fenics import basix, dolfinx  # noqa: I001  (first: it loads dolfinx_solver)

    from dolfinx.graph import adjacencylist
    from dolfinx.io.utils import distribute_entity_data

    if comm.rank == rank:
        if tm is None:
            raise MeshingError("to_dolfinx: the holding rank passed no mesh")
        x = np.ascontiguousarray(tm.points, dtype=np.float64)
        cells = np.ascontiguousarray(tm.cells, dtype=np.int64)
        ctag_vals = tm.cell_tags.astype(np.int32)
        facets = np.ascontiguousarray(tm.facets, dtype=np.int64)
        ftag_vals = tm.facet_tags.astype(np.int32)
        meta = (dict(tm.phase_names), np.asarray(tm.box, dtype=float))
    else:
        x = np.empty((0, 3), dtype=np.float64)
        cells = np.empty((0, 4), dtype=np.int64)
        ctag_vals = np.empty((0,), dtype=np.int32)
        facets = np.empty((0, 3), dtype=np.int64)
        ftag_vals = np.empty((0,), dtype=np.int32)
        meta = None
    phase_names, box = comm.bcast(meta, root=rank)

    element = basix.ufl.element("Lagrange", "tetrahedron", 1, shape=(3,))
    partitioner = dolfinx.mesh.create_cell_partitioner(
        dolfinx.mesh.GhostMode.shared_facet, max_facet_to_cell_links=2
    )
    mesh = dolfinx.mesh.create_mesh(comm, cells, element, x, partitioner, max_facet_to_cell_links=2)
    tdim = mesh.topology.dim

    def _tags(dim: int, entities: np.ndarray, values: np.ndarray):
        mesh.topology.create_connectivity(dim, tdim)
        local_e, local_v = distribute_entity_data(mesh, dim, entities, values)
        return dolfinx.mesh.meshtags_from_entities(
            mesh, dim, adjacencylist(local_e), local_v.astype(np.int32, copy=False)
        )

    cell_tags = _tags(tdim, cells, ctag_vals)
    cell_tags.name = "phases"
    facet_tags = _tags(tdim - 1, facets, ftag_vals)
    facet_tags.name = "facets"
    return DolfinxMesh(mesh, cell_tags, facet_tags, phase_names, box)


def kuhn_grid(
    shape: tuple[int, ...], spacing: npt.ArrayLike = (1.0, 1.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Grid of ``shape`` boxes, each split into 6 positive tetrahedra (Kuhn split).

    Returns the grid nodes (first axis slowest) and the cells, ordered by
    tetrahedron type first: cell ``t * n_boxes + b`` is type ``t`` of box ``b``
    (boxes in C order). The lattice itself is :func:`tomofem.meshing.lattice.kuhn_lattice`.
    """
    from tomofem.meshing.lattice import kuhn_lattice

    n = np.asarray(shape, dtype=np.int64)
    points, cells = kuhn_lattice(n, n * np.asarray(spacing, dtype=float))
    return points, cells.reshape(-1, 6, 4).transpose(1, 0, 2).reshape(-1, 4)


def structured_tetmesh(
    labels: npt.NDArray[np.integer], spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> TetMesh:
    """Voxel (staircase) mesh: each voxel split into 6 tetrahedra, phase = label index + 1.

    This is not body-fitted: it is the reference "voxel FEM" discretisation and
    the simplest conformal mesh for tests and baselines.

    Parameters
    ----------
    labels
        3D integer array of label indices 0..8 (0 = pore).
    spacing
        Voxel size per axis [length].
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise MeshingError(f"structured mesh: need a 3D label image, got shape {labels.shape}")
    if labels.min() < 0 or labels.max() >= tags.MAX_PHASES:
        raise MeshingError(f"structured mesh: labels must lie in 0..{tags.MAX_PHASES - 1}")
    h = np.asarray(spacing, dtype=float)
    points, cells = kuhn_grid(labels.shape, h)
    phase = np.tile(labels.ravel().astype(np.int32) + 1, 6)
    box = np.array([[0.0, 0.0, 0.0], np.array(labels.shape) * h])
    facets, ftags = tag_facets(points, cells, phase, box)
    return TetMesh(points, cells.astype(np.int64), phase, facets, ftags, box, route="voxel-kuhn")
