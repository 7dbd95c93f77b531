"""Structured background tetrahedral lattices of a box (the canvas a level set cuts).

A lattice fills the box ``[0, L]`` exactly with positively oriented
tetrahedra whose vertices include the box corners, so the box faces are
planes of lattice vertices and stay planar through cutting.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from tomofem.errors import MeshingError

# Corner c of a cube has offsets (c >> 2 & 1, c >> 1 & 1, c & 1); the six Kuhn
# (Freudenthal) tetrahedra share the main diagonal 0-7 and tile the cube so
# that neighbouring cubes match face by face.
_KUHN = np.array(
    [(0, 1, 3, 7), (0, 1, 5, 7), (0, 2, 3, 7), (0, 2, 6, 7), (0, 4, 5, 7), (0, 4, 6, 7)]
)


def signed_volumes(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Six times the signed volume of each tetrahedron (cheap orientation test).

    Computed in chunks of 2^20 cells: the edge vectors take 96 bytes per cell.
    """
    chunk = 2**20
    if len(cells) > chunk:
        return np.concatenate(
            [signed_volumes(points, cells[i : i + chunk]) for i in range(0, len(cells), chunk)]
        )
    p0 = points[cells[:, 0]]
    a = points[cells[:, 1]] - p0
    b = points[cells[:, 2]] - p0
    c = points[cells[:, 3]] - p0
    return (
        a[:, 0] * (b[:, 1] * c[:, 2] - b[:, 2] * c[:, 1])
        - a[:, 1] * (b[:, 0] * c[:, 2] - b[:, 2] * c[:, 0])
        + a[:, 2] * (b[:, 0] * c[:, 1] - b[:, 1] * c[:, 0])
    )


def orient_positive(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Return ``cells`` with rows swapped where needed so every volume is positive."""
    cells = cells.copy()
    flip = signed_volumes(points, cells) < 0
    cells[flip, 1], cells[flip, 2] = cells[flip, 2], cells[flip, 1].copy()
    return cells


def lattice_counts(extent: npt.ArrayLike, step: float) -> np.ndarray:
    """Return lattice intervals per axis giving a spacing as close to ``step`` as fits.

    Parameters
    ----------
    extent
        Box edge lengths, shape (3,).
    step
        Wanted lattice spacing, same unit; the actual spacing per axis is
        ``extent / counts`` (at least one interval per axis).
    """
    extent = np.asarray(extent, dtype=float)
    if not step > 0:
        raise MeshingError(f"lattice: spacing {step} must be positive")
    return np.maximum(np.rint(extent / step).astype(np.int64), 1)


def kuhn_lattice(counts: npt.ArrayLike, extent: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Kuhn (Freudenthal) lattice: each lattice cube split into 6 tetrahedra.

    Parameters
    ----------
    counts
        Number of cubes per axis, shape (3,).
    extent
        Box edge lengths, shape (3,); the lower corner is the origin.

    Returns
    -------
    points, cells
        Vertex coordinates (N, 3) and positively oriented tetrahedra (6 per cube).
        Vertex ``(i, j, k)`` has index ``(i * (ny + 1) + j) * (nz + 1) + k``.
    """
    n = np.asarray(counts, dtype=np.int64)
    g = np.meshgrid(*_axes(n, np.asarray(extent, dtype=float)), indexing="ij")
    points = np.stack([a.ravel() for a in g], axis=1)
    vid = np.arange(points.shape[0], dtype=np.int64).reshape(tuple(n + 1))
    corners = np.stack(
        [
            vid[i : i + n[0], j : j + n[1], k : k + n[2]].ravel()
            for i in (0, 1)
            for j in (0, 1)
            for k in (0, 1)
        ],
        axis=1,
    )
    cells = corners[:, _KUHN].reshape(-1, 4)
    return points, orient_positive(points, cells)


def _axes(counts: np.ndarray, extent: np.ndarray) -> list[np.ndarray]:
    """Node coordinates per axis, with the last node exactly at the box face."""
    return [np.r_[np.arange(m) * (e / m), e] for m, e in zip(counts, extent, strict=True)]


def bcc_lattice(counts: npt.ArrayLike, extent: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Body-centred cubic lattice: cube corners plus cube centres, 4 tetrahedra per inner face.

    Every tetrahedron joins the centres of two face-adjacent cubes to one edge
    of their shared face (dihedral angles 60 and 90 degrees, the lattice of
    isosurface stuffing, Labelle and Shewchuk 2007); on the box faces each
    cube face is closed by the two halves of the pyramid from the cube centre,
    so the box faces stay planar.

    Parameters
    ----------
    counts
        Number of cubes per axis, shape (3,).
    extent
        Box edge lengths, shape (3,); the lower corner is the origin.

    Returns
    -------
    points, cells
        Corners first (``(i * (ny + 1) + j) * (nz + 1) + k``), then centres
        (``(i * ny + j) * nz + k`` after them); positively oriented tetrahedra.
    """
    n = np.asarray(counts, dtype=np.int64)
    ext = np.asarray(extent, dtype=float)
    ax = _axes(n, ext)
    g = np.meshgrid(*ax, indexing="ij")
    corners = np.stack([a.ravel() for a in g], axis=1)
    mids = [0.5 * (a[1:] + a[:-1]) for a in ax]
    g = np.meshgrid(*mids, indexing="ij")
    centres = np.stack([a.ravel() for a in g], axis=1)
    cid = np.arange(len(corners), dtype=np.int64).reshape(tuple(n + 1))
    mid = len(corners) + np.arange(len(centres), dtype=np.int64).reshape(tuple(n))
    cells = []
    for axis in range(3):
        # move the face-normal axis first
        c = np.moveaxis(cid, axis, 0)
        m = np.moveaxis(mid, axis, 0)
        nn = m.shape
        # face corners of the faces at normal index f (0..n): ring of 4 corners
        ring = [
            c[:, : nn[1], : nn[2]],
            c[:, 1:, : nn[2]],
            c[:, 1:, 1:],
            c[:, : nn[1], 1:],
        ]
        # inner faces: between cubes f-1 and f, f = 1..n-1
        lo, hi = m[:-1], m[1:]
        for r in range(4):
            a = ring[r][1:-1]
            b = ring[(r + 1) % 4][1:-1]
            cells.append(np.stack([lo.ravel(), hi.ravel(), a.ravel(), b.ravel()], axis=1))
        # box faces: pyramid from the adjacent cube centre, split along ring 0-2
        for f, cube in ((0, m[0]), (nn[0], m[-1])):
            r0, r1, r2, r3 = (ring[r][f] for r in range(4))
            cells.append(np.stack([cube.ravel(), r0.ravel(), r1.ravel(), r2.ravel()], axis=1))
            cells.append(np.stack([cube.ravel(), r0.ravel(), r2.ravel(), r3.ravel()], axis=1))
    points = np.concatenate([corners, centres])
    return points, orient_positive(points, np.concatenate(cells))


def congruent_cells(lattice: str, counts: npt.ArrayLike) -> np.ndarray:
    """For each cell of :func:`kuhn_lattice` or :func:`bcc_lattice`, the first of its shape.

    The lattices are built from a few prototype tetrahedra translated over
    the grid (six per cube for Kuhn; for BCC one block per face orientation
    and ring position, and per box face), with the same spacing along each
    axis: any shape measure of cell ``i`` equals that of cell
    ``congruent_cells(...)[i]`` up to round-off in the coordinates.

    Parameters
    ----------
    lattice
        ``"kuhn"`` or ``"bcc"``.
    counts
        Number of cubes per axis, shape (3,), as given to the lattice.
    """
    n = np.asarray(counts, dtype=np.int64)
    if lattice == "kuhn":
        return np.arange(6 * int(np.prod(n)), dtype=np.int64) % 6
    sizes = []
    for axis in range(3):
        m = np.roll(n, -axis)  # the face-normal axis first, as bcc_lattice orders them
        sizes += [int((m[0] - 1) * m[1] * m[2])] * 4 + [int(m[1] * m[2])] * 4
    sizes = np.asarray(sizes, dtype=np.int64)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    return np.repeat(starts, sizes)


def sample_voxel_field(
    field: np.ndarray, x: np.ndarray, spacing: np.ndarray, *, periodic: bool = False
) -> np.ndarray:
    """Trilinear interpolation of a voxel-centred field at physical points.

    Parameters
    ----------
    field
        Values at the voxel centres, ``(i + 1/2) * spacing``.
    x
        Points, shape ``(n, 3)``, in the units of ``spacing``.
    spacing
        Voxel size per axis.
    periodic
        Wrap around the box (one period of a tiling structure); otherwise the
        outer half voxel takes the nearest centre's value.
    """
    c = (x / spacing - 0.5).T
    return ndimage.map_coordinates(field, c, order=1, mode="grid-wrap" if periodic else "nearest")
