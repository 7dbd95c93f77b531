"""Surface remeshing and graded volume meshing of a :class:`LabelSurface` with gmsh.

Recipe (issue 4): the shared surface is loaded as one discrete surface per
patch tag (interface pair, or box face of one phase); ``createTopology``
builds the curves where patches meet; ``classifySurfaces(pi, True, True, pi)``
splits patches only as far as needed to parametrise each with one map, keeping
every patch boundary; ``createGeometry`` parametrises them and the surfaces
are remeshed at the interface size (:func:`remesh_surface`). Remeshing cuts
chords and loses 1-2 % of convex particles' volume, so interface vertices are
offset until every phase has its voxel volume again
(:func:`restore_phase_volumes`), interface sheets are kept off the box planes
(:func:`clear_box_planes`) and the surface is checked for triangles that
cross or fold onto each other (:func:`untangle`). The remeshed surface is then loaded into a
fresh model as discrete surfaces (kept as they are), one volume per connected
region of each phase, filled by gmsh's Delaunay (or HXT) with a size growing from the interface
size to the maximum size (a grid view, :func:`_size_view`), optimised by
Netgen, and the few remaining slivers are collapsed (:func:`mesh_volume`).

Measured limits (bench/meshing.py): gmsh does not honour a size field (nor a
size callback, nor ``MeshSizeMax``) on the reparametrised discrete patches
(they stay at about the input edge length, 1 voxel; only ``MeshSizeMin``
acts), so the interfaces are remeshed uniformly at the interface size; the
planar box faces are then meshed again as plane surfaces with a graded size
field (:func:`coarsen_box_faces`: 64^3 packing 16,430 -> 13,448 vertices).
``createTopology``, ``classifySurfaces`` and HXT make some choices in
pointer order, so the same surface gives different meshes from run to run
(a few percent of the cells): this route is NOT bit-reproducible. (A child
process with address-space randomisation off made it so, but depended on
process state: bytecode caches, environment, allocation history; it was
removed.) What holds on every run are its invariants: phase volumes equal to
the voxel volumes, tags, conformity. With ``MeshOptions.reproducible`` (the
default) the arrays come in canonical order (:func:`canonical`), so a mesh
is compared by content, not by gmsh's numbering. For bit-identical meshes
use the level-set route (the default first route).

gmsh holds global state: every call initialises and always finalises it, also
on error.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from tomofem.errors import MeshingError
from tomofem.meshing.options import MeshOptions
from tomofem.meshing.slivers import collapse_slivers, relocate_vertices
from tomofem.meshing.surface import (
    BOX_MARGIN,
    OUTSIDE,
    LabelSurface,
    offset_to_volumes,
    vertex_classes,
)
from tomofem.meshing.tetmesh import TetMesh, kuhn_grid, sicn, tag_facets, tet_volumes

log = logging.getLogger(__name__)

#: Cells below this gmsh SICN are treated after the volume mesh (issue 4's target).
SICN_TARGET = 0.1


@contextmanager
def gmsh_session(threads: int = 1, verbosity: int = 0):
    """Initialise gmsh for one job and always finalise it, also on error."""
    import gmsh

    if gmsh.isInitialized():
        raise MeshingError(
            "gmsh: a gmsh session is already open in this process; finalise it (gmsh.finalize()) "
            "before meshing"
        )
    gmsh.initialize(["-noenv"], readConfigFiles=False, interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.option.setNumber("General.Verbosity", verbosity)
        gmsh.option.setNumber("General.NumThreads", threads)
        gmsh.option.setNumber("Mesh.MaxNumThreads1D", threads)
        gmsh.option.setNumber("Mesh.MaxNumThreads2D", threads)
        gmsh.option.setNumber("Mesh.MaxNumThreads3D", threads)
        yield gmsh
    finally:
        gmsh.finalize()


def _locate(tri_uv: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index of the 2D triangle containing each query point (the nearest one if none does).

    ``tri_uv`` is ``(m, 3, 2)``. Candidates are the triangles with the nearest
    centroids, tested by barycentric coordinates; points not yet inside one
    are retried with 8 times more candidates (slender triangles have distant
    centroids), up to 512; a point outside them all keeps the nearest.
    matplotlib's trapezoid-map finder, used before, refused the box-face
    triangulations of some box faces as "invalid", which crashed the route.
    """
    from scipy.spatial import cKDTree

    tree = cKDTree(tri_uv.mean(axis=1))
    _, hit = tree.query(query)  # fallback: nearest centroid
    hit = np.asarray(hit)
    todo = np.arange(len(query))
    k, k_max = 8, min(512, len(tri_uv))  # beyond 512 candidates: outside, keep the nearest
    while len(todo):
        k = min(k, k_max)
        _, cand = tree.query(query[todo], k=k)
        cand = np.asarray(cand).reshape(len(todo), k)
        a, b, c = (tri_uv[cand, i] for i in range(3))  # (n, k, 2) each
        v0, v1, v2 = b - a, c - a, query[todo, None, :] - a
        det = v0[..., 0] * v1[..., 1] - v0[..., 1] * v1[..., 0]
        det = np.where(det == 0.0, np.finfo(float).tiny, det)
        l1 = (v2[..., 0] * v1[..., 1] - v2[..., 1] * v1[..., 0]) / det
        l2 = (v0[..., 0] * v2[..., 1] - v0[..., 1] * v2[..., 0]) / det
        inside = np.minimum(np.minimum(l1, l2), 1.0 - l1 - l2) >= -1e-9
        found = inside.any(axis=1)
        hit[todo[found]] = cand[found, np.argmax(inside[found], axis=1)]
        if k == k_max:
            break
        todo, k = todo[~found], 8 * k
    return hit


def _triple_keys(tri: np.ndarray, n: int) -> np.ndarray:
    s = np.sort(tri.astype(np.int64), axis=1)
    return (s[:, 0] * n + s[:, 1]) * n + s[:, 2]


def _stage(name: str, fn, *args, timings: dict[str, float] | None = None):
    """Run one gmsh step; a failure becomes a MeshingError naming the step, cause and fix.

    With ``timings``, the step's wall time [s] is added under ``name``.
    """
    t0 = time.perf_counter()
    try:
        return fn(*args)
    except Exception as exc:  # gmsh raises bare Exception with its last error
        raise MeshingError(
            f"gmsh {name}: {exc}. The surface probably has features thinner than the interface "
            "size: clean the image (remove one-voxel features), smooth more, or lower "
            "interface_size"
        ) from exc
    finally:
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0


def _load_patches(
    gmsh, points: np.ndarray, tris: np.ndarray, patch: np.ndarray, timings=None
) -> np.ndarray:
    """Add one discrete surface per patch tag (entity tag = index + 1) and build topology."""
    codes = np.unique(patch)
    for i in range(len(codes)):
        gmsh.model.addDiscreteEntity(2, i + 1)
    gmsh.model.mesh.addNodes(2, 1, np.arange(1, len(points) + 1), points.ravel())
    for i, code in enumerate(codes):
        gmsh.model.mesh.addElementsByType(i + 1, 2, [], (tris[patch == code] + 1).ravel())
    _stage("topology", gmsh.model.mesh.createTopology, timings=timings)
    return codes


def _surface_triangles(gmsh, tris: np.ndarray) -> dict[int, int]:
    """Index in ``tris`` of one triangle of every gmsh surface.

    Topology creation and classification split and renumber surfaces but keep
    the input nodes (tag = index + 1), so a triangle identifies its patch.
    """
    n = int(tris.max()) + 1
    keys = _triple_keys(tris, n)
    order = np.argsort(keys)
    out: dict[int, int] = {}
    for _, stag in gmsh.model.getEntities(2):
        _, _, ntags = gmsh.model.mesh.getElements(2, stag)
        if not len(ntags) or not len(ntags[0]):
            raise MeshingError(f"gmsh topology: surface {stag} has no triangles")
        tri = np.asarray(ntags[0][:3], dtype=np.int64).reshape(1, 3) - 1
        pos = np.searchsorted(keys, _triple_keys(tri, n), sorter=order)
        out[stag] = int(order[pos[0]])
    return out


def remesh_surface(
    surf: LabelSurface,
    options: MeshOptions,
    voxel: float,
    timings: dict[str, float] | None = None,
) -> LabelSurface:
    """Remesh the shared surface at ``options.interface_size`` (gmsh, patch by patch).

    With ``timings``, the wall time of each gmsh step is added to it [s].

    Returns a surface with the same conventions (canonical orientation:
    interface normals from the lower to the higher phase id, box normals
    outwards) whose patches meet conformally.
    """
    from scipy.spatial import cKDTree

    patch = surf.patch
    with gmsh_session(options.threads) as gmsh:
        gmsh.model.add("surface")
        _load_patches(gmsh, surf.points, surf.tris, patch, timings)
        _stage(
            "classification",
            gmsh.model.mesh.classifySurfaces,
            math.radians(options.feature_angle),
            True,
            True,
            math.pi,
            timings=timings,
        )
        _stage("parametrisation", gmsh.model.mesh.createGeometry, timings=timings)
        surf_code = {k: int(patch[i]) for k, i in _surface_triangles(gmsh, surf.tris).items()}
        log.debug("gmsh: %d patches after classification", len(surf_code))
        _size_view(gmsh, surf, options, voxel)
        _stage("surface remeshing", gmsh.model.mesh.generate, 2, timings=timings)

        ntags, coords, _ = gmsh.model.mesh.getNodes()
        ntags = np.asarray(ntags, dtype=np.int64)
        pts = np.asarray(coords, dtype=np.float64).reshape(-1, 3)
        row = np.full(int(ntags.max()) + 1, -1, dtype=np.int64)
        row[ntags] = np.arange(len(ntags))
        tris_l, codes_l = [], []
        order = np.argsort(patch, kind="stable")
        ucodes, starts = np.unique(patch[order], return_index=True)
        by_code = dict(zip(ucodes.tolist(), np.split(order, starts[1:]), strict=True))
        trees: dict[int, tuple] = {}
        for stag, code in surf_code.items():
            _, _, en = gmsh.model.mesh.getElements(2, stag)
            if not len(en) or not len(en[0]):
                raise MeshingError(
                    f"gmsh surface remeshing: patch {stag} ({code}) got no triangles; lower "
                    "interface_size or clean small features from the image"
                )
            tri = row[np.asarray(en[0], dtype=np.int64).reshape(-1, 3)]
            # orient like the input triangles of the same patch tag nearby
            if code not in trees:
                op = surf.points[surf.tris[by_code[code]]]
                on = np.cross(op[:, 1] - op[:, 0], op[:, 2] - op[:, 0])
                trees[code] = (cKDTree(op.mean(axis=1)), on)
            tree, on = trees[code]
            sample = tri[:: max(1, len(tri) // 25)]
            sp = pts[sample]
            _, near = tree.query(sp.mean(axis=1))
            sn = np.cross(sp[:, 1] - sp[:, 0], sp[:, 2] - sp[:, 0])
            if np.einsum("ij,ij->", sn, on[near]) < 0:
                tri = tri[:, [0, 2, 1]]
            tris_l.append(tri)
            codes_l.append(np.full(len(tri), code, dtype=np.int64))
    used = np.unique(np.concatenate(tris_l))
    remap = np.full(len(pts), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    pts = pts[used]
    tris = remap[np.concatenate(tris_l)]
    code = np.concatenate(codes_l)
    box_face = np.where(code >= 1000, code % 10, -1)
    sides = np.where(
        (code >= 1000)[:, None],
        np.stack([(code - 1000) // 10, np.zeros_like(code)], axis=1),
        np.stack([(code - 100) // 10, (code - 100) % 10], axis=1),
    ).astype(np.int32)
    tol = 1e-7 * voxel
    on_plane = np.full(pts.shape, -1, dtype=np.int8)
    for side in (0, 1):
        on_plane[np.abs(pts - surf.box[side]) <= tol] = side
    out = LabelSurface(pts, tris, sides, box_face.astype(np.int64), on_plane, surf.box.copy())
    return collapse_flat_regions(replace(out, points=out.snap_to_box(out.points)))


def _perimeter_loop(edges: np.ndarray) -> list[tuple[int, bool]]:
    """Order the boundary edges of a planar region into one closed loop.

    Returns (edge index, forward) pairs; ``forward`` is True when the loop
    runs from ``edges[i, 0]`` to ``edges[i, 1]``.
    """
    by_vertex: dict[int, list[int]] = {}
    for i, (a, b) in enumerate(edges.tolist()):
        by_vertex.setdefault(a, []).append(i)
        by_vertex.setdefault(b, []).append(i)
    if any(len(v) != 2 for v in by_vertex.values()):
        raise MeshingError("box-face coarsening: the face boundary is not a simple loop")
    start = int(edges.min())
    loop: list[tuple[int, bool]] = []
    used = np.zeros(len(edges), dtype=bool)
    v = start
    while True:
        nxt = next((i for i in by_vertex[v] if not used[i]), None)
        if nxt is None:
            break
        used[nxt] = True
        forward = int(edges[nxt, 0]) == v
        loop.append((nxt, forward))
        v = int(edges[nxt, 1] if forward else edges[nxt, 0])
    if not used.all() or v != start:
        raise MeshingError("box-face coarsening: the face boundary is not one closed loop")
    return loop


def coarsen_box_faces(
    surf: LabelSurface, options: MeshOptions, voxel: float, timings: dict[str, float] | None = None
) -> LabelSurface:
    """Remesh each box face with sizes growing from the interface size to ``max_size``.

    gmsh honours only a global minimum size on the reparametrised discrete
    patches of :func:`remesh_surface` (size fields are ignored there), so box
    faces come out at the interface size everywhere, which costs more
    vertices than the interfaces on a packing of 100^3 voxels. Each box
    face is a plane: it is meshed again as a planar gmsh surface bounded by
    its edges along the box, with the curves where phases meet on it
    embedded and kept as they are (one segment per edge, so the interfaces
    and the neighbouring faces still match), and a Distance + Threshold size
    field from those curves. Each new triangle takes the phase of the old
    triangle under its centroid.
    """
    h = options.interface_size * voxel
    big = options.max_size * voxel
    pts = [surf.points]
    n_pts = len(surf.points)
    keep = surf.box_face < 0
    tris_l, sides_l, face_l = [surf.tris[keep]], [surf.sides[keep]], [surf.box_face[keep]]
    with gmsh_session(options.threads) as gmsh:
        for opt, val in (
            ("Mesh.MeshSizeExtendFromBoundary", 0),
            ("Mesh.MeshSizeFromPoints", 0),
            ("Mesh.MeshSizeFromCurvature", 0),
            ("Mesh.Algorithm", 6),
        ):
            gmsh.option.setNumber(opt, val)
        for face in range(6):
            ax, upper = face // 2, face % 2
            uv_axes = [a for a in range(3) if a != ax]
            sel = np.flatnonzero(surf.box_face == face)
            if not len(sel):
                raise MeshingError(f"box-face coarsening: box face {face} has no triangles")
            tri = surf.tris[sel]
            phase = surf.sides[sel, 0]
            e = np.sort(tri[:, [[0, 1], [1, 2], [2, 0]]].reshape(-1, 2), axis=1)
            ep = np.repeat(phase, 3)
            key = e[:, 0] * n_pts + e[:, 1]
            order = np.argsort(key, kind="stable")
            k, first = np.unique(key[order], return_index=True)
            count = np.diff(np.r_[first, len(order)])
            pmin = np.minimum.reduceat(ep[order], first)
            pmax = np.maximum.reduceat(ep[order], first)
            edges = np.stack([k // n_pts, k % n_pts], axis=1)
            perimeter = edges[count == 1]
            inner = edges[(count == 2) & (pmin != pmax)]
            gmsh.model.add(f"face{face}")
            verts = np.unique(np.r_[perimeter.ravel(), inner.ravel()])
            ptag = {}
            for v in verts.tolist():
                u = surf.points[v, uv_axes]
                ptag[v] = gmsh.model.geo.addPoint(float(u[0]), float(u[1]), 0.0)
            lines_b = [gmsh.model.geo.addLine(ptag[a], ptag[b]) for a, b in perimeter.tolist()]
            lines_i = [gmsh.model.geo.addLine(ptag[a], ptag[b]) for a, b in inner.tolist()]
            loop = _perimeter_loop(perimeter)
            cl = gmsh.model.geo.addCurveLoop([lines_b[i] if f else -lines_b[i] for i, f in loop])
            plane = gmsh.model.geo.addPlaneSurface([cl])
            gmsh.model.geo.synchronize()
            for line in lines_b + lines_i:
                gmsh.model.mesh.setTransfiniteCurve(line, 2)
            if lines_i:
                gmsh.model.mesh.embed(1, lines_i, 2, plane)
            dist = gmsh.model.mesh.field.add("Distance")
            gmsh.model.mesh.field.setNumbers(dist, "CurvesList", lines_b + lines_i)
            gmsh.model.mesh.field.setNumber(dist, "Sampling", 4)
            thr = gmsh.model.mesh.field.add("Threshold")
            gmsh.model.mesh.field.setNumber(thr, "InField", dist)
            gmsh.model.mesh.field.setNumber(thr, "SizeMin", h)
            gmsh.model.mesh.field.setNumber(thr, "SizeMax", big)
            gmsh.model.mesh.field.setNumber(thr, "DistMin", 0.5 * h)
            gmsh.model.mesh.field.setNumber(thr, "DistMax", options.size_growth_distance * voxel)
            gmsh.model.mesh.field.setAsBackgroundMesh(thr)
            _stage("box-face remeshing", gmsh.model.mesh.generate, 2, timings=timings)
            ntags, coords, _ = gmsh.model.mesh.getNodes()
            ntags = np.asarray(ntags, dtype=np.int64)
            uv = np.asarray(coords, dtype=np.float64).reshape(-1, 3)[:, :2]
            index = np.full(int(ntags.max()) + 1, -1, dtype=np.int64)
            for v, t in ptag.items():
                (nt,), _, _ = gmsh.model.mesh.getNodes(0, t)
                index[int(nt)] = v
            new = ntags[index[ntags] < 0]
            base = sum(len(p) for p in pts)
            index[new] = base + np.arange(len(new))
            xyz = np.empty((len(new), 3))
            lookup = np.full(int(ntags.max()) + 1, -1, dtype=np.int64)
            lookup[ntags] = np.arange(len(ntags))
            xyz[:, uv_axes] = uv[lookup[new]]
            xyz[:, ax] = surf.box[upper, ax]
            pts.append(xyz)
            _, _, en = gmsh.model.mesh.getElements(2, plane)
            t_new = index[np.asarray(en[0], dtype=np.int64).reshape(-1, 3)]
            gmsh.model.remove()
            # phase of the old triangle under each new centroid
            allp = np.concatenate(pts)
            c = allp[t_new].mean(axis=1)[:, uv_axes]
            hit = _locate(surf.points[:, uv_axes][tri], c)
            # outward normals (lower face: -axis, upper face: +axis)
            q = allp[t_new]
            nrm = np.cross(q[:, 1] - q[:, 0], q[:, 2] - q[:, 0])[:, ax]
            flip = (nrm > 0) != bool(upper)
            t_new[flip] = t_new[flip][:, [0, 2, 1]]
            tris_l.append(t_new)
            sides_l.append(np.stack([phase[hit], np.full(len(hit), OUTSIDE)], axis=1))
            face_l.append(np.full(len(t_new), face, dtype=np.int64))
    points = np.concatenate(pts)
    tris = np.concatenate(tris_l)
    used = np.unique(tris)
    remap = np.full(len(points), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    points = points[used]
    tol = 1e-7 * voxel
    on_plane = np.full(points.shape, -1, dtype=np.int8)
    for side in (0, 1):
        on_plane[np.abs(points - surf.box[side]) <= tol] = side
    out = LabelSurface(
        points,
        remap[tris],
        np.concatenate(sides_l).astype(np.int32),
        np.concatenate(face_l),
        on_plane,
        surf.box.copy(),
    )
    return replace(out, points=out.snap_to_box(out.points))


def collapse_flat_regions(surf: LabelSurface) -> LabelSurface:
    """Merge coincident triangle pairs: the phase between them has zero thickness.

    A particle cap that pokes a few voxels through a box face, or a lens
    thinner than the interface size, is remeshed as two patches with the same
    triangles. The phase between them is dropped there: the pair becomes one
    triangle between the two outer sides (a box triangle of the outer phase,
    or an interface between the phases on either side).
    """
    keys = np.sort(surf.tris, axis=1)
    _, inv, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    dup = counts[inv] == 2
    if not np.any(dup):
        return surf
    if np.any(counts > 2):
        raise MeshingError("gmsh surface remeshing: a triangle is shared by more than two patches")
    idx = np.flatnonzero(dup)
    idx = idx[np.argsort(inv[idx], kind="stable")].reshape(-1, 2)
    keep = np.ones(len(surf.tris), dtype=bool)
    tris, sides, box_face = surf.tris.copy(), surf.sides.copy(), surf.box_face.copy()
    for i, j in idx:
        if sides[i, 1] == OUTSIDE and sides[j, 1] == OUTSIDE:
            raise MeshingError("gmsh surface remeshing: two box patches overlap")
        if sides[j, 1] == OUTSIDE:
            i, j = j, i
        a, b = set(int(x) for x in sides[i]), set(int(x) for x in sides[j])
        common = a & b
        if len(common) != 1:
            raise MeshingError("gmsh surface remeshing: overlapping patches share no phase")
        (q,) = a - common
        (r,) = b - common
        if sides[i, 1] == OUTSIDE:  # box triangle over an interface of the flat phase
            sides[i] = (r, OUTSIDE)
        else:
            # normal of triangle i pointing from q towards flat (and on to r)
            t = tris[i] if sides[i, 0] == q else tris[i][[0, 2, 1]]
            lo, hi = min(q, r), max(q, r)
            tris[i] = t if q == lo else t[[0, 2, 1]]
            sides[i] = (lo, hi)
        keep[j] = False
    log.warning(
        "gmsh: %d triangle pairs of zero-thickness regions (thinner than the interface size) "
        "merged; their phase volume goes to the neighbours",
        len(idx),
    )
    return replace(surf, tris=tris[keep], sides=sides[keep], box_face=box_face[keep])


def restore_phase_volumes(
    surf: LabelSurface, targets: dict[int, float], iterations: int = 3, voxel: float = 1.0
) -> LabelSurface:
    """Offset interface vertices so each phase regains its target volume.

    Remeshing at a few voxels cuts chords across the curved smoothed surface
    and loses volume on convex particles (about h^2 / (4 R) relative, 1-2 %
    at h = 2.25, R = 10 voxels). One uniform offset per phase (the largest
    phase excepted: it follows in a watertight box) restores the phase
    volumes before the volume mesh. No vertex moves closer than
    ``BOX_MARGIN`` voxels (of size ``voxel``) to a box plane.
    """
    cls, _, _ = vertex_classes(surf)
    movable = np.zeros(len(surf.points), dtype=bool)
    movable[surf.tris[surf.sides[:, 1] != OUTSIDE].ravel()] = True
    movable &= cls == 0
    skip = max(targets, key=targets.get)
    groups = []
    for ph, vt in targets.items():
        if ph == skip:
            continue
        t = np.flatnonzero((surf.sides[:, 0] == ph) | (surf.sides[:, 1] == ph))
        sign = np.where(surf.sides[t, 0] == ph, 1.0, -1.0)
        groups.append((t, sign, np.zeros(len(t), dtype=np.int64), np.array([vt])))
    p = offset_to_volumes(
        surf.points, surf.tris, movable, groups, iterations, surf.box, BOX_MARGIN * voxel
    )
    return replace(surf, points=p)


def clear_box_planes(surf: LabelSurface, voxel: float) -> LabelSurface:
    """Keep interface sheets off the box planes.

    A remeshed interface can touch a box face where a particle meets it at a
    shallow angle: an interface vertex that no box triangle uses lies on (or
    within ``BOX_MARGIN`` voxels of) a plane, or an interface triangle has all
    three vertices on one plane (on the curve where the particle meets the
    face) and lies on top of that face's triangles. Either way the phase
    between them has zero thickness, and gmsh stops ("two exactly
    self-intersecting facets", 200^3 packings). Such vertices move inwards to
    ``BOX_MARGIN``; such triangles are split at their centroid, lifted
    ``BOX_MARGIN`` into the box.
    """
    margin = BOX_MARGIN * voxel
    lo, hi = surf.box[0] + margin, surf.box[1] - margin
    iface = surf.sides[:, 1] != OUTSIDE
    on_box = np.zeros(len(surf.points), dtype=bool)
    on_box[surf.tris[~iface].ravel()] = True
    free = np.zeros(len(surf.points), dtype=bool)
    free[surf.tris[iface].ravel()] = True
    free &= ~on_box
    points = surf.points.copy()
    points[free] = np.clip(points[free], lo, hi)
    tol = 1e-7 * voxel
    flat = np.zeros(len(surf.tris), dtype=bool)
    up = np.zeros((len(surf.tris), 3))
    for ax in range(3):
        for plane, inward in ((surf.box[0, ax], 1.0), (surf.box[1, ax], -1.0)):
            f = iface & np.all(np.abs(points[surf.tris, ax] - plane) <= tol, axis=1)
            flat |= f
            up[f, ax] = inward
    moved = int(np.count_nonzero(np.any(points != surf.points, axis=1)))
    if not flat.any():
        if moved:
            log.info("gmsh: %d interface vertices moved off the box planes", moved)
        return replace(surf, points=points)
    k = np.flatnonzero(flat)
    new = len(points) + np.arange(len(k))
    cent = points[surf.tris[k]].mean(axis=1) + margin * up[k]
    a, b, c = surf.tris[k].T
    tris = np.concatenate(
        [
            surf.tris[~flat],
            np.stack([a, b, new], 1),
            np.stack([b, c, new], 1),
            np.stack([c, a, new], 1),
        ]
    )

    def rep(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x[~flat], x[k], x[k], x[k]])

    on_plane = np.concatenate([surf.on_plane, np.full((len(k), 3), -1, dtype=surf.on_plane.dtype)])
    log.info(
        "gmsh: %d interface vertices moved off the box planes, %d interface triangles lying "
        "in a box plane split and lifted",
        moved,
        len(k),
    )
    return LabelSurface(
        np.concatenate([points, cent]),
        tris,
        rep(surf.sides),
        rep(surf.box_face),
        on_plane,
        surf.box,
    )


def untangle(
    surf: LabelSurface, before: np.ndarray, timings: dict[str, float] | None = None
) -> LabelSurface:
    """Check that the surface does not cross itself; undo local offsets where it does.

    The volume offsets of :func:`restore_phase_volumes` can push a sheet
    through a neighbouring one where they lie closer than the offset (thin
    pore throats, particles nearly tangent to a box face). gmsh then fails
    after minutes ("PLC Error", "HXT 3D mesh failed"). The vertices of
    crossing triangles and their neighbours go back to ``before`` (their
    positions on the remeshed surface, which lies on the smoothed input),
    ring by ring, up to three rings; a surface still crossing itself raises
    ``MeshingError`` naming where.
    """
    from tomofem.meshing.intersections import crossing_pairs

    t0 = time.perf_counter()
    points = surf.points.copy()
    reset = np.zeros(len(points), dtype=bool)
    try:
        for _ in range(4):
            pairs = crossing_pairs(points, surf.tris)
            if not len(pairs):
                if reset.any():
                    log.info("gmsh: %d vertices keep their remeshed position", int(reset.sum()))
                return replace(surf, points=points)
            bad = np.zeros(len(points), dtype=bool)
            bad[surf.tris[pairs.ravel()].ravel()] = True
            near = np.any(bad[surf.tris], axis=1)  # one ring more
            reset[surf.tris[near].ravel()] = True
            points[reset] = before[reset]
        where = points[surf.tris[pairs[:, 0]]].mean(axis=1)
        raise MeshingError(
            f"surface check: the remeshed surface crosses itself in {len(pairs)} triangle pairs "
            f"(first at {np.array2string(where[0], precision=2)}): sheets closer than the "
            "interface size. Lower interface_size, or clean thin pore throats from the image"
        )
    finally:
        if timings is not None:
            timings["surface check"] = timings.get("surface check", 0.0) + time.perf_counter() - t0


def _size_view(gmsh, surf: LabelSurface, options: MeshOptions, voxel: float) -> None:
    """Background size from a coarse grid view: interface size growing with distance.

    gmsh's Distance field is slow on discrete surfaces without a
    parametrisation, so the distance to the nearest interface vertex is
    sampled on a grid of about two interface sizes (a sizing function need
    not be finer) and handed to gmsh as a post-processing view.
    """
    from scipy.spatial import cKDTree

    h = options.interface_size * voxel
    extent = surf.box[1] - surf.box[0]
    shape = np.maximum(1, np.ceil(extent / (2.0 * h)).astype(int))
    nodes, cells = kuhn_grid(tuple(shape), extent / shape)
    nodes = nodes + surf.box[0]
    iface = np.unique(surf.tris[surf.sides[:, 1] != OUTSIDE].ravel())
    if len(iface):
        dist, _ = cKDTree(surf.points[iface]).query(nodes)
    else:
        dist = np.full(len(nodes), np.inf)
    growth = options.size_growth_distance * voxel
    frac = np.clip((dist - 0.5 * h) / growth, 0.0, 1.0)
    size = h + frac * (options.max_size * voxel - h)
    x = nodes[cells]  # (M, 4, 3)
    data = np.concatenate([x[:, :, 0], x[:, :, 1], x[:, :, 2], size[cells]], axis=1)
    view = gmsh.view.add("size")
    gmsh.view.addListData(view, "SS", len(cells), data.ravel())
    field = gmsh.model.mesh.field.add("PostView")
    gmsh.model.mesh.field.setNumber(field, "ViewTag", view)
    gmsh.model.mesh.field.setAsBackgroundMesh(field)
    # Reparametrised discrete surfaces otherwise keep about the edge length of
    # their input triangulation (measured: 1 voxel whatever the field says), so
    # the surface is remeshed at the interface size uniformly; the field grades
    # the volume.
    gmsh.option.setNumber("Mesh.MeshSizeMin", h)
    for opt, val in (
        ("Mesh.MeshSizeExtendFromBoundary", 0),
        ("Mesh.MeshSizeFromPoints", 0),
        ("Mesh.MeshSizeFromCurvature", 0),
        ("Mesh.Algorithm", 6),
        ("Mesh.Algorithm3D", 10),
        ("Mesh.Optimize", 1),
        ("Mesh.OptimizeNetgen", 0),
    ):
        gmsh.option.setNumber(opt, val)


def _add_volumes(
    gmsh, surf: LabelSurface, phases: np.ndarray, spacing: np.ndarray
) -> dict[int, int]:
    """One gmsh volume per connected region of each phase; returns volume -> phase.

    HXT needs every volume to be one connected region. A phase's surface
    splits into closed shells; a region is bounded by one or more shells (a
    pore region around floating particles by its outer shell and theirs). Each
    shell is assigned to the voxel component of the phase just inside it.
    """
    from scipy import ndimage

    from tomofem.meshing.surface import _shells

    surf_tri = _surface_triangles(gmsh, surf.tris)
    vol_phase: dict[int, int] = {}
    h = np.asarray(spacing, dtype=float)
    for ph in sorted(int(p) for p in np.unique(surf.sides) if p != OUTSIDE):
        comp_img, ncomp = ndimage.label(phases == ph)
        t, sign, comp = _shells(surf, ph)
        q = surf.points[surf.tris[t]]
        nrm = np.cross(q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]) * sign[:, None]
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-300)
        inside = q.mean(axis=1) - 0.3 * float(h.min()) * nrm
        idx = np.clip(np.floor(inside / h).astype(int), 0, np.array(phases.shape) - 1)
        vox = comp_img[idx[:, 0], idx[:, 1], idx[:, 2]]
        shell_ids, shell = np.unique(comp, return_inverse=True)
        votes = np.zeros((len(shell_ids), ncomp + 1), dtype=np.int64)
        np.add.at(votes, (shell, vox), 1)
        votes[:, 0] = 0
        if np.any(votes.max(axis=1) == 0):
            raise MeshingError(
                f"gmsh volume definition: a surface shell of phase {ph} encloses none of its "
                "voxels; the surface has moved by more than a voxel (smooth less)"
            )
        region_of_shell = votes.argmax(axis=1)
        tri_pos = {int(x): i for i, x in enumerate(t)}
        regions: dict[int, list[int]] = {}
        for stag, ti in surf_tri.items():
            if ti in tri_pos:
                regions.setdefault(int(region_of_shell[shell[tri_pos[ti]]]), []).append(stag)
        for _, stags in sorted(regions.items()):
            loop = gmsh.model.geo.addSurfaceLoop(stags)
            vol_phase[gmsh.model.geo.addVolume([loop])] = ph
    gmsh.model.geo.synchronize()
    return vol_phase


def mesh_volume(
    surf: LabelSurface,
    options: MeshOptions,
    phases: np.ndarray,
    spacing: tuple[float, float, float],
    timings: dict[str, float] | None = None,
) -> TetMesh:
    """Fill each phase enclosed by ``surf`` with a graded tetrahedral mesh (surface kept).

    The surface triangles become the boundary faces of the tetrahedra as they
    are (discrete surfaces are not remeshed); HXT fills the volumes with the
    graded size field, then the Netgen optimiser removes slivers. ``phases``
    (the phase-id image) and ``spacing`` tell which shells bound the same
    connected region.
    """
    voxel = float(min(spacing))
    with gmsh_session(options.threads) as gmsh:
        gmsh.model.add("volume")
        _load_patches(gmsh, surf.points, surf.tris, surf.patch, timings)
        vol_phase = _stage(
            "volume definition",
            _add_volumes,
            gmsh,
            surf,
            phases,
            np.asarray(spacing),
            timings=timings,
        )
        _size_view(gmsh, surf, options, voxel)
        _stage("volume meshing", gmsh.model.mesh.generate, 3, timings=timings)
        if options.optimize_netgen:
            _stage("Netgen optimisation", gmsh.model.mesh.optimize, "Netgen", timings=timings)
        ntags, coords, _ = gmsh.model.mesh.getNodes()
        cells_l, phase_l = [], []
        for vtag, ph in vol_phase.items():
            etypes, _, enodes = gmsh.model.mesh.getElements(3, vtag)
            for et, en in zip(etypes, enodes, strict=True):
                if et != 4:
                    raise MeshingError(f"gmsh volume meshing: unexpected element type {et}")
                c = np.asarray(en, dtype=np.int64).reshape(-1, 4)
                cells_l.append(c)
                phase_l.append(np.full(len(c), ph, dtype=np.int32))
    if not cells_l:
        raise MeshingError("gmsh volume meshing produced no tetrahedra")
    ntags = np.asarray(ntags, dtype=np.int64)
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 3)
    # gmsh's optimiser visits elements in pointer order, which leaves a few
    # coordinates differing in the last bits from run to run (7e-15 voxels
    # measured): snap to a grid of 2^-32 of the box (box planes stay exact)
    q = 2.0**-32 * float(np.max(surf.box[1] - surf.box[0]))
    coords = np.round(coords / q) * q
    cells = np.concatenate(cells_l)
    cell_phase = np.concatenate(phase_l)
    used = np.unique(cells)
    lookup = np.full(int(ntags.max()) + 1, -1, dtype=np.int64)
    lookup[ntags] = np.arange(len(ntags))
    pts = coords[lookup[used]]
    remap = np.full(int(used.max()) + 1, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    cells = remap[cells]
    # gmsh numbers nodes and elements differently from run to run even when
    # the mesh is the same: put vertices in coordinate order and cells in
    # vertex order, so equal meshes are equal arrays
    order = np.lexsort(pts.T[::-1])
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    pts = pts[order]
    cells = np.sort(rank[cells], axis=1)
    corder = np.lexsort(cells.T[::-1])
    cells, cell_phase = cells[corder], cell_phase[corder]
    neg = tet_volumes(pts, cells) < 0
    cells[neg] = cells[neg][:, [0, 2, 1, 3]]
    # The optimiser leaves a few flat tetrahedra (about 1 in 10^5 at 100^3)
    # whose four vertices lie on interfaces; collapse one of their edges. The
    # threshold sits above the 5-degree target so that the flattest caps (gmsh
    # SICN just below 0.1 at about 5-6 degrees) go too.
    pts, cells, cell_phase, _ = collapse_slivers(pts, cells, cell_phase, surf.box, 8.0)
    # and the rare needle that passes the angle test but not the SICN target
    # (200^3 packing: one cell at SICN 0.093, smallest angle above 8 degrees)
    pts, cells, cell_phase, _ = collapse_slivers(
        pts, cells, cell_phase, surf.box, SICN_TARGET * 1.2, quality=sicn, floor=SICN_TARGET
    )
    # what collapses cannot fix (no short edge), moving a free vertex may
    pts, _ = relocate_vertices(pts, cells, cell_phase, SICN_TARGET * 1.2, quality=sicn)
    facets, ftags = tag_facets(pts, cells, cell_phase, surf.box)
    return TetMesh(pts, cells, cell_phase, facets, ftags, surf.box.copy(), route="gmsh")


def mesh(
    labels: np.ndarray,
    spacing: tuple[float, float, float],
    options: MeshOptions,
    timings: dict[str, float] | None = None,
) -> TetMesh:
    """Route "surface-nets-gmsh": labels -> shared surface -> gmsh remesh -> graded tets.

    Parameters
    ----------
    labels
        Validated 3D label indices (0 = pore, 1 = solid/active, 2 = CBD, ...).
    spacing
        Voxel size per axis [length].
    options
        Sizes in voxels, smoothing, optimisation.
    timings
        If given, filled with the seconds spent in each stage ("surface",
        "remesh", "volume") and in each gmsh step within them
        ("remesh: classification", ...).

    Notes
    -----
    Cell phase ids are ``label + 1``. Phase volumes equal the voxel volumes
    to round-off (volume-preserving offsets before and after remeshing), so
    the phase fractions carry no smoothing bias. Not bit-reproducible (see
    the module notes); with ``options.reproducible`` the arrays are put in
    canonical order (:func:`canonical`).
    """
    tm, t = mesh_here(labels, spacing, options)
    if options.reproducible:
        tm = canonical(tm)
    if timings is not None:
        timings.update(t)
    return tm


def canonical(tm: TetMesh) -> TetMesh:
    """Return the same mesh with its arrays in canonical order.

    Vertices sorted lexicographically by their coordinates (x, then y, then
    z); each cell rotated by an even permutation so that its smallest vertex
    comes first and the rest ascend (orientation kept: an odd sort swaps the
    last two), cells sorted by their sorted vertex tuples; facets likewise
    (cyclic rotation). Two meshes with the same vertices and cells give equal
    arrays, whatever order the mesher produced.
    """
    order = np.lexsort(tm.points.T[::-1])
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    cells = _even_sorted(rank[tm.cells])
    corder = np.lexsort(np.sort(cells, axis=1).T[::-1])
    facets = _even_sorted(rank[tm.facets])
    forder = np.lexsort(np.sort(facets, axis=1).T[::-1])
    return replace(
        tm,
        points=np.ascontiguousarray(tm.points[order]),
        cells=np.ascontiguousarray(cells[corder]),
        cell_tags=np.ascontiguousarray(tm.cell_tags[corder]),
        facets=np.ascontiguousarray(facets[forder]),
        facet_tags=np.ascontiguousarray(tm.facet_tags[forder]),
    )


def _even_sorted(simplices: np.ndarray) -> np.ndarray:
    """Each row sorted ascending, then the last two swapped where the sort was odd."""
    perm = np.argsort(simplices, axis=1, kind="stable")
    out = np.take_along_axis(simplices, perm, axis=1)
    # parity of each row's permutation: count inversions (rows are short)
    k = perm.shape[1]
    inv = np.zeros(len(perm), dtype=np.int64)
    for i in range(k):
        for j in range(i + 1, k):
            inv += perm[:, i] > perm[:, j]
    odd = (inv % 2).astype(bool)
    if k == 3:  # triangles: a cyclic rotation keeps orientation; odd sorts reverse it
        out[odd] = out[odd][:, [0, 2, 1]]
    else:
        out[odd] = out[odd][:, [0, 1, 3, 2]]
    return out


def mesh_here(
    labels: np.ndarray, spacing: tuple[float, float, float], options: MeshOptions
) -> tuple[TetMesh, dict[str, float]]:
    """Do the work of :func:`mesh` in this process; return the mesh and the stage times [s]."""
    from tomofem.meshing.surface import count_contact_defects, repair_contacts, shared_surface

    t: dict[str, float] = {}
    t0 = time.perf_counter()
    lab = np.asarray(labels)
    edges, corners = count_contact_defects(lab)
    if edges or corners:
        if not options.repair_contacts:
            raise MeshingError(
                f"surface: {edges} voxel edges and {corners} voxel corners where a phase touches "
                "itself only diagonally make the surface non-manifold; clean the image or set "
                "MeshOptions(repair_contacts=True)"
            )
        lab, changed = repair_contacts(lab)
        log.warning(
            "surface: changed %d voxels to remove %d edge-only and %d corner-only contacts "
            "(lower label index wins: pore joins diagonally, solids split)",
            changed,
            edges,
            corners,
        )
    phases = lab.astype(np.int32) + 1
    voxel = float(min(spacing))
    surf = shared_surface(
        phases,
        spacing,
        options.smoothing_iterations,
        options.smoothing_lambda,
        options.smoothing_mu,
        options.preserve_volume,
        options.volume_iterations,
    )
    t["surface"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    steps: dict[str, float] = {}
    remeshed = remesh_surface(surf, options, voxel, steps)
    if options.max_size > options.interface_size:
        remeshed = coarsen_box_faces(remeshed, options, voxel, steps)
    remeshed = clear_box_planes(remeshed, voxel)
    before = remeshed.points  # on the remeshed surface, for untangle
    if options.preserve_volume:
        counts = np.bincount(phases.ravel())
        vvox = float(np.prod(spacing))
        targets = {int(p): float(c) * vvox for p, c in enumerate(counts) if c > 0}
        remeshed = restore_phase_volumes(remeshed, targets, options.volume_iterations, voxel)
    remeshed = untangle(remeshed, before, steps)
    t["remesh"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    t.update({f"remesh: {k}": v for k, v in steps.items()})
    steps = {}
    tm = mesh_volume(remeshed, options, phases, spacing, steps)
    t["volume"] = time.perf_counter() - t0
    t.update({f"volume: {k}": v for k, v in steps.items()})
    log.debug("surface-nets-gmsh stage times: %s", t)
    return replace(tm, route="surface-nets-gmsh"), t
