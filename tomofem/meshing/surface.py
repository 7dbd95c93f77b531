"""One shared, watertight multi-material surface from a label image.

Independent marching-cubes surfaces of several labels overlap or leave gaps
where three phases meet (scikit-image issue 7223). Surface nets (VTK's
``vtkSurfaceNets3D`` through pyvista ``contour_labels``) produce one vertex per
voxel corner shared by every label around it, so the interfaces of all phases
meet exactly, including along triple lines. The image is padded with a
background label, which yields the box faces as triangles too; all vertices on
the box lie exactly on its planes before smoothing.

The unsmoothed (staircase) surface encloses each phase's voxels exactly. It is
then smoothed here (not by VTK, whose smoother rounds the box edges) with
constraints: box vertices stay on their planes, vertices on curves where
patches meet move along the curve, corners stay fixed. Smoothing shrinks
convex particles (by about sigma^2 / R), so each closed particle shell is then
offset along its normals until it encloses its voxel volume again.

Orientation: each triangle's normal (right-hand rule) points from
``sides[:, 0]`` to ``sides[:, 1]`` (checked for VTK 9.6+; earlier VTK had
random orientation). ``sides[:, 1] == 0`` marks a box-face triangle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from tomofem import tags
from tomofem.errors import MeshingError

log = logging.getLogger(__name__)

OUTSIDE = 0  # side label of the padding around the box
# Volume offsets stop this far from the box planes [voxels]: an interface
# vertex closer than that to a box face makes a sliver there, one beyond it
# makes the surface cross itself.
BOX_MARGIN = 0.1


@dataclass(frozen=True)
class LabelSurface:
    """A triangulated multi-material surface of a box.

    Attributes
    ----------
    points
        Vertex coordinates (N, 3) [physical length].
    tris
        Triangles (T, 3); normal points from ``sides[:, 0]`` to ``sides[:, 1]``.
    sides
        Phase ids on the two sides of each triangle, (T, 2); ``0`` = outside the box.
    box_face
        ``tags.BoxFace`` value of box triangles, -1 for interfaces, (T,).
    on_plane
        Per vertex and axis: -1 if free, 0 if on the lower, 1 if on the upper
        box plane of that axis, (N, 3).
    box
        Lower and upper box corners, (2, 3).
    """

    points: npt.NDArray[np.float64]
    tris: npt.NDArray[np.int64]
    sides: npt.NDArray[np.int32]
    box_face: npt.NDArray[np.int64]
    on_plane: npt.NDArray[np.int8]
    box: npt.NDArray[np.float64]

    @property
    def patch(self) -> npt.NDArray[np.int64]:
        """Facet tag of each triangle: interface tag, or box-face tag of its phase."""
        a, b = self.sides[:, 0].astype(np.int64), self.sides[:, 1].astype(np.int64)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        iface = 100 + 10 * lo + hi
        bnd = 1000 + 10 * a + self.box_face
        return np.where(b == OUTSIDE, bnd, iface)

    def snap_to_box(self, points: np.ndarray) -> np.ndarray:
        """``points`` with box vertices put back exactly on their planes."""
        out = points.copy()
        for ax in range(3):
            for side in (0, 1):
                m = self.on_plane[:, ax] == side
                out[m, ax] = self.box[side, ax]
        return out


# --------------------------------------------------------------------------- contacts


def _shifted(v: np.ndarray, offsets: dict[int, int]) -> np.ndarray:
    """View of ``v`` shifted by 0 or 1 along the given axes (trimmed to a common size)."""
    sl = [slice(None)] * 3
    for ax, d in offsets.items():
        sl[ax] = slice(d, v.shape[ax] - 1 + d)
    return v[tuple(sl)]


def _edge_defects(v: np.ndarray) -> list[tuple[tuple[int, int, int], tuple[int, int]]]:
    """Voxel edges around which a label touches itself only diagonally.

    Returns the lowest voxel of each 2x2 square and the two axes spanning it.
    """
    out = []
    for axes in ((0, 1), (0, 2), (1, 2)):
        a = _shifted(v, {axes[0]: 0, axes[1]: 0})
        b = _shifted(v, {axes[0]: 1, axes[1]: 0})
        c = _shifted(v, {axes[0]: 0, axes[1]: 1})
        d = _shifted(v, {axes[0]: 1, axes[1]: 1})
        bad = ((a == d) & (b != a) & (c != a)) | ((b == c) & (a != b) & (d != b))
        out.extend((tuple(int(i) for i in idx), axes) for idx in np.argwhere(bad))
    return out


def _corner_defects(v: np.ndarray) -> list[tuple[int, int, int]]:
    """2x2x2 blocks in which a label touches itself only at the block centre."""
    n = v.shape
    blk = np.stack(
        [
            v[i : n[0] - 1 + i, j : n[1] - 1 + j, k : n[2] - 1 + k]
            for i in (0, 1)
            for j in (0, 1)
            for k in (0, 1)
        ]
    )  # index i*4 + j*2 + k
    bad = np.zeros(blk.shape[1:], dtype=bool)
    for c in range(4):  # corners 0..3 and their opposites 7..4
        o = 7 - c
        same = blk[c] == blk[o]
        others = [m for m in range(8) if m not in (c, o)]
        for m in others:
            same &= blk[m] != blk[c]
        bad |= same
    return [tuple(int(i) for i in idx) for idx in np.argwhere(bad)]


def count_contact_defects(labels: np.ndarray) -> tuple[int, int]:
    """Count the edge-only and corner-only contacts of equal labels.

    Such contacts make the shared surface non-manifold (two sheets meeting
    along a line or at a point), which no volume mesher accepts.
    """
    return len(_edge_defects(labels)), len(_corner_defects(labels))


def repair_contacts(labels: np.ndarray, max_rounds: int = 20) -> tuple[np.ndarray, int]:
    """Remove edge- and corner-only contacts by changing single voxels.

    Each contact is settled in favour of the lowest label among the voxels
    around it: if the diagonally touching label is the lowest, a neighbour
    voxel joins it (pore, label 0, thus becomes 26-connected through such
    contacts); otherwise one of its two voxels takes the lowest other label
    (solids stay 6-connected).

    Returns
    -------
    labels, changed
        A repaired copy and the number of voxels changed.
    """
    v = np.array(labels, copy=True)
    changed = 0
    for _ in range(max_rounds):
        edges = _edge_defects(v)
        corners = _corner_defects(v) if not edges else []
        if not edges and not corners:
            return v, changed
        for (i, j, k), axes in edges:
            base = np.array([i, j, k])
            cells = []
            for da in (0, 1):
                for db in (0, 1):
                    p = base.copy()
                    p[axes[0]] += da
                    p[axes[1]] += db
                    cells.append(tuple(p))
            vals = [v[c] for c in cells]  # order: 00, 01, 10, 11 (a, c, b, d)
            if not (
                (vals[0] == vals[3] and vals[1] != vals[0] and vals[2] != vals[0])
                or (vals[1] == vals[2] and vals[0] != vals[1] and vals[3] != vals[1])
            ):
                continue  # already settled by an earlier change this round
            diag = (0, 3) if vals[0] == vals[3] and vals[1] != vals[0] else (1, 2)
            other = tuple(m for m in range(4) if m not in diag)
            lab = vals[diag[0]]
            low_other = min(vals[m] for m in other)
            if lab < low_other:
                target = max(other, key=lambda m: (vals[m], m))
                v[cells[target]] = lab
            else:
                v[cells[diag[1]]] = low_other
            changed += 1
        for i, j, k in corners:
            cells = [(i + a, j + b, k + c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]
            vals = [v[c] for c in cells]
            for c0 in range(4):
                o = 7 - c0
                rest = [m for m in range(8) if m not in (c0, o)]
                if vals[c0] == vals[o] and all(vals[m] != vals[c0] for m in rest):
                    low_other = min(vals[m] for m in rest)
                    if vals[c0] < low_other:
                        v[cells[c0 ^ 4]] = vals[c0]  # face neighbour of corner c0
                    else:
                        v[cells[o]] = low_other
                    changed += 1
                    break
    raise MeshingError(
        f"contacts: edge/corner-only contacts remain after {max_rounds} repair rounds; clean the "
        "image first (remove one-voxel features, e.g. with a morphological opening)"
    )


# ---------------------------------------------------------------------------- surface


def surface_nets(phases: np.ndarray, spacing: tuple[float, float, float]) -> LabelSurface:
    """Unsmoothed surface-nets surface of a phase-id image (ids >= 1), padded.

    Every vertex is a voxel corner, so each closed shell encloses its voxels
    exactly and box vertices lie exactly on the box planes.
    """
    import pyvista as pv

    shape = np.asarray(phases.shape)
    img = pv.ImageData(dimensions=phases.shape, origin=(0.5, 0.5, 0.5), spacing=(1, 1, 1))
    img.point_data["phase"] = np.asarray(phases, dtype=np.int32).ravel(order="F")
    surf = img.contour_labels(
        "all",
        background_value=OUTSIDE,
        smoothing=False,
        output_mesh_type="quads",
        pad_background=True,
    )
    quads = surf.faces.reshape(-1, 5)[:, 1:].astype(np.int64)
    sides = np.asarray(surf.cell_data["boundary_labels"], dtype=np.int32)
    vox = np.asarray(surf.points, dtype=np.float64)
    on_plane = np.full(vox.shape, -1, dtype=np.int8)
    on_plane[vox == 0.0] = 0
    on_plane[vox == shape[None, :].astype(float)] = 1
    qface = np.full(len(quads), -1, dtype=np.int64)
    outer = sides[:, 1] == OUTSIDE
    for ax in range(3):
        for up in (0, 1):
            on = np.all(on_plane[quads[outer]][:, :, ax] == up, axis=1)
            qface[np.flatnonzero(outer)[on]] = int(tags.BoxFace.of(ax, bool(up)))
    if np.any(qface[outer] < 0):
        raise MeshingError("surface: a box-face quad of the surface nets lies on no box plane")
    # Split each quad along the diagonal that leaves no triangle with all three
    # vertices on patch curves: smoothing straightens a staircase curve, and
    # such a triangle would collapse to zero area.
    lo, hi = np.minimum(sides[:, 0], sides[:, 1]), np.maximum(sides[:, 0], sides[:, 1])
    qpatch = np.where(outer, 1000 + 10 * sides[:, 0] + qface, 100 + 10 * lo + hi)
    cls, _, _ = _feature_classes(quads, qpatch, len(vox))
    on_curve = cls[quads] > 0  # (Q, 4)
    bad_a = (on_curve[:, [0, 1, 2]].all(1)).astype(int) + on_curve[:, [0, 2, 3]].all(1)
    bad_b = (on_curve[:, [1, 2, 3]].all(1)).astype(int) + on_curve[:, [1, 3, 0]].all(1)
    use_b = bad_b < bad_a
    t1 = np.where(use_b[:, None], quads[:, [1, 2, 3]], quads[:, [0, 1, 2]])
    t2 = np.where(use_b[:, None], quads[:, [1, 3, 0]], quads[:, [0, 2, 3]])
    tris = np.concatenate([t1, t2])
    sides = np.concatenate([sides, sides])
    box_face = np.concatenate([qface, qface])
    h = np.asarray(spacing, dtype=float)
    return LabelSurface(
        points=vox * h,
        tris=tris,
        sides=sides,
        box_face=box_face,
        on_plane=on_plane,
        box=np.array([np.zeros(3), shape * h]),
    )


def _feature_classes(
    faces: np.ndarray, patch: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertex classes and feature edges of a polygon surface (faces (F, k), patch tag per face)."""
    k = faces.shape[1]
    e = np.concatenate([faces[:, [i, (i + 1) % k]] for i in range(k)])
    e.sort(axis=1)
    ep = np.tile(patch, k)
    # unique rows through one int64 key (np.unique(axis=0) was 60 % of the surface stage)
    key = e[:, 0].astype(np.int64) * n + e[:, 1]
    ukey, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    edges = np.stack([ukey // n, ukey % n], axis=1)
    pmin = np.full(len(edges), np.iinfo(np.int64).max)
    pmax = np.full(len(edges), np.iinfo(np.int64).min)
    np.minimum.at(pmin, inv, ep)
    np.maximum.at(pmax, inv, ep)
    feature = (counts != 2) | (pmin != pmax)
    deg = np.bincount(edges[feature].ravel(), minlength=n)
    cls = np.where(deg == 0, 0, np.where(deg == 2, 1, 2))
    return cls, edges, feature


def vertex_classes(surf: LabelSurface) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classify vertices for constrained smoothing.

    Returns
    -------
    cls
        0 = inside one patch, 1 = on a curve where patches meet (exactly two
        feature edges), 2 = corner (fixed), per vertex.
    edges
        Unique edges (E, 2).
    feature
        Whether each edge is a feature edge (patches differ, or not two triangles).
    """
    return _feature_classes(surf.tris, surf.patch, len(surf.points))


def smooth(surf: LabelSurface, iterations: int, lam: float = 0.5, mu: float = 0.0) -> LabelSurface:
    """Constrained Laplacian (``mu = 0``) or Taubin smoothing.

    Vertices inside a patch move towards the mean of their neighbours; on a
    curve towards the mean of their two curve neighbours; corners are fixed;
    box vertices stay on their planes.
    """
    if iterations == 0:
        return surf
    cls, edges, feature = vertex_classes(surf)
    n = len(surf.points)
    # rows: patch vertices use every edge, curve vertices only feature edges
    use = np.concatenate([edges, edges[:, ::-1]])
    use_feat = np.concatenate([feature, feature])
    row_cls = cls[use[:, 0]]
    keep = (row_cls == 0) | ((row_cls == 1) & use_feat)
    r, c = use[keep, 0], use[keep, 1]
    w = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    deg = np.asarray(w.sum(axis=1)).ravel()
    movable = (cls < 2) & (deg > 0)
    inv = np.zeros(n)
    inv[movable] = 1.0 / deg[movable]
    w = sparse.diags(inv) @ w
    p = surf.points.copy()
    factors = [lam] if mu == 0.0 else [lam, mu]
    for _ in range(iterations):
        for f in factors:
            step = w @ p - p
            step[~movable] = 0.0
            p = surf.snap_to_box(p + f * step)
    return replace(surf, points=p)


def triangle_quality(points: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Shape quality 4 sqrt(3) area / sum of squared edges (1 = equilateral, 0 = flat)."""
    p = points[tris]
    area = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
    e2 = sum(np.sum((p[:, i] - p[:, (i + 1) % 3]) ** 2, axis=1) for i in range(3))
    return 4.0 * np.sqrt(3.0) * area / np.maximum(e2, 1e-300)


def flip_flat_triangles(surf: LabelSurface, threshold: float = 0.05) -> LabelSurface:
    """Flip the longest edge of nearly flat triangles inside a patch.

    Smoothing straightens staircase curves; a triangle whose three vertices
    lie on one curve (or a corner and a curve) then collapses, and gmsh cannot
    parametrise a patch containing it. Its longest edge is then usually an
    inner edge of the patch, and flipping it (when that improves the worse of
    the two triangles) removes the flat triangle without moving any vertex.
    """
    tris = surf.tris.copy()
    patch = surf.patch
    q = triangle_quality(surf.points, tris)
    bad = np.flatnonzero(q < threshold)
    if not len(bad):
        return surf
    # directed edge -> triangle
    owner: dict[tuple[int, int], int] = {}
    for t, (a, b, c) in enumerate(tris.tolist()):
        owner[(a, b)] = t
        owner[(b, c)] = t
        owner[(c, a)] = t
    flipped = 0
    for t in bad:
        a, b, c = tris[t].tolist()
        p = surf.points
        # rotate so that (a, b) is the longest edge
        edges = [(a, b, c), (b, c, a), (c, a, b)]
        a, b, c = max(edges, key=lambda e: np.sum((p[e[0]] - p[e[1]]) ** 2))
        u = owner.get((b, a))
        if u is None or patch[u] != patch[t] or owner.get((a, b)) != t:
            continue
        (d,) = [v for v in tris[u].tolist() if v not in (a, b)]
        new = np.array([[c, a, d], [c, d, b]])
        if triangle_quality(p, new).min() <= min(q[t], triangle_quality(p, tris[[u]])[0]):
            continue
        tris[t], tris[u] = new
        for tt in (t, u):
            x, y, z = tris[tt].tolist()
            owner[(x, y)] = owner[(y, z)] = owner[(z, x)] = tt
        owner.pop((a, b), None)
        owner.pop((b, a), None)
        flipped += 1
    log.debug("surface: flipped %d of %d nearly flat triangles", flipped, len(bad))
    return replace(surf, tris=tris)


def _shells(surf: LabelSurface, phase: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Triangles bounding ``phase``, their orientation sign (+1 = normal points out), shell id."""
    t = np.flatnonzero((surf.sides[:, 0] == phase) | (surf.sides[:, 1] == phase))
    sign = np.where(surf.sides[t, 0] == phase, 1.0, -1.0)
    tri = surf.tris[t]
    n = len(surf.points)
    rows = np.concatenate([tri[:, 0], tri[:, 1], tri[:, 2]])
    cols = np.concatenate([tri[:, 1], tri[:, 2], tri[:, 0]])
    g = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    return t, sign, comp[tri[:, 0]]


def _signed_volumes(
    points: np.ndarray, tri: np.ndarray, sign: np.ndarray, shell: np.ndarray, nshell: int
) -> np.ndarray:
    """Volume enclosed by each shell (divergence theorem; shells must be closed)."""
    p = points[tri]
    v = np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])) / 6.0 * sign
    return np.bincount(shell, weights=v, minlength=nshell)


def preserve_volumes(
    smoothed: LabelSurface,
    raw: LabelSurface,
    iterations: int = 3,
    skip_phase: int | None = None,
    voxel: float = 1.0,
) -> LabelSurface:
    """Offset each closed shell so that it encloses the same volume as on ``raw``.

    ``raw`` must have the same triangles (the staircase surface, whose shells
    enclose their voxels exactly). Only interface vertices inside a patch
    move, along the shell's area-weighted normal; curves, corners and box
    faces stay. ``skip_phase`` (the matrix, usually) is not corrected itself:
    its volume follows from the others in a watertight box. No vertex moves
    closer than ``BOX_MARGIN`` voxels (of size ``voxel``) to a box plane.
    """
    cls, _, _ = vertex_classes(smoothed)
    iface_vertex = np.zeros(len(smoothed.points), dtype=bool)
    it = smoothed.sides[:, 1] != OUTSIDE
    iface_vertex[smoothed.tris[it].ravel()] = True
    movable = (cls == 0) & iface_vertex
    groups = []
    for ph in (int(p) for p in np.unique(smoothed.sides) if p != OUTSIDE and p != skip_phase):
        t, sign, comp = _shells(smoothed, ph)
        _, shell = np.unique(comp, return_inverse=True)
        nshell = int(shell.max()) + 1 if len(shell) else 0
        target = _signed_volumes(raw.points, raw.tris[t], sign, shell, nshell)
        groups.append((t, sign, shell, target))
    margin = BOX_MARGIN * voxel
    p = offset_to_volumes(
        smoothed.points, smoothed.tris, movable, groups, iterations, smoothed.box, margin
    )
    return replace(smoothed, points=p)


def offset_to_volumes(
    points: np.ndarray,
    tris: np.ndarray,
    movable: np.ndarray,
    groups: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    iterations: int,
    box: np.ndarray | None = None,
    margin: float = 0.0,
) -> np.ndarray:
    """Move ``movable`` vertices along normals until closed shells reach target volumes.

    Parameters
    ----------
    points, tris
        A closed multi-material triangulation.
    movable
        Vertices allowed to move (interface vertices off curves and the box).
    groups
        Per phase: triangle indices bounding it, orientation sign (+1 if the
        triangle normal points out of the phase), shell index of each triangle,
        target volume of each shell. Phases are corrected in turn (Gauss-Seidel),
        ``iterations`` times, since a vertex on an interface between two
        corrected phases moves both.
    box, margin
        If given, no vertex is moved closer than ``margin`` to a box plane
        (nor out of the box): a particle nearly tangent to a box face would
        otherwise be pushed through it, and the surface would cross itself
        there (measured: 2 vertices 0.009 voxels outside a 100^3 packing's box,
        12 crossing triangle pairs, gmsh "PLC Error").

    Returns
    -------
    numpy.ndarray
        Moved points.
    """
    p = points.copy()
    for _ in range(iterations):
        for t, sign, shell, target in groups:
            nshell = len(target)
            tri = tris[t]
            vol = _signed_volumes(p, tri, sign, shell, nshell)
            q = p[tri]
            an = 0.5 * np.cross(q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]) * sign[:, None]
            # area vector per vertex; a vertex belongs to one shell of a phase
            vn = np.zeros_like(p)
            vshell = np.full(len(p), -1)
            for k in range(3):
                np.add.at(vn, tri[:, k], an / 3.0)
                vshell[tri[:, k]] = shell
            mv = movable & (vshell >= 0)
            norm = np.linalg.norm(vn, axis=1)
            gain = np.bincount(vshell[mv], weights=norm[mv], minlength=nshell)
            delta = np.where(gain > 0, (target - vol) / np.maximum(gain, 1e-300), 0.0)
            d = np.zeros(len(p))
            d[mv] = delta[vshell[mv]]
            unit = np.zeros_like(p)
            unit[mv] = vn[mv] / norm[mv, None]
            new = p + d[:, None] * unit
            if box is not None:  # stop at the margin, or where the vertex already was
                lo = np.minimum(box[0] + margin, p)
                hi = np.maximum(box[1] - margin, p)
                new = np.clip(new, lo, hi)
            p = new
    return p


def phase_volumes(surf: LabelSurface) -> dict[int, float]:
    """Volume enclosed by each phase's triangles (divergence theorem)."""
    out = {}
    for ph in (int(x) for x in np.unique(surf.sides) if x != OUTSIDE):
        t, sign, _ = _shells(surf, ph)
        out[ph] = float(
            _signed_volumes(surf.points, surf.tris[t], sign, np.zeros(len(t), int), 1)[0]
        )
    return out


def interface_areas(surf: LabelSurface) -> dict[int, float]:
    """Area of each patch tag (interfaces and box faces per phase)."""
    p = surf.points[surf.tris]
    a = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
    patch = surf.patch
    return {int(k): float(a[patch == k].sum()) for k in np.unique(patch)}


def shared_surface(
    phases: np.ndarray,
    spacing: tuple[float, float, float],
    smoothing_iterations: int = 6,
    lam: float = 0.5,
    mu: float = 0.0,
    preserve: bool = True,
    volume_iterations: int = 3,
) -> LabelSurface:
    """Surface nets, constrained smoothing and volume-preserving offset, in one call.

    Parameters
    ----------
    phases
        Phase ids (>= 1) per voxel, without edge/corner-only contacts
        (:func:`repair_contacts`).
    spacing
        Voxel size per axis [length].
    smoothing_iterations, lam, mu
        See :func:`smooth`.
    preserve, volume_iterations
        See :func:`preserve_volumes`; the phase with most voxels is not
        corrected directly.
    """
    raw = surface_nets(phases, spacing)
    surf = flip_flat_triangles(smooth(raw, smoothing_iterations, lam, mu))
    if preserve and smoothing_iterations > 0:
        counts = np.bincount(np.asarray(phases).ravel())
        surf = preserve_volumes(
            surf, raw, volume_iterations, int(np.argmax(counts)), float(min(spacing))
        )
    return surf
