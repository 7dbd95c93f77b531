"""Connectivity semantics of meshed phases: make them explicit, and measure them.

The image module's dual convention joins pore voxels through faces, edges and
corners (26) and solid voxels through faces only (6). A body-fitted mesh
joins cells only through faces, so the convention has to be built into the
geometry: :func:`bridge_pore_contacts` opens every edge- or corner-only pore
contact into a face path of voxels (for the field that drives the mesher, not
the image the volumes are matched to), after which every phase's wanted
connectivity is face connectivity. :func:`compare_connectivity` then counts
components and spanning clusters of each phase in the image (dual
convention) and in the mesh (face-adjacent cells), so any change a coarse
lattice or smoothing makes is reported rather than hidden.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components

from tomofem import tags
from tomofem.image.connectivity import bridge_diagonal_contacts
from tomofem.meshing.tetmesh import TetMesh, _unique_faces, tet_volumes

log = logging.getLogger(__name__)


def bridge_pore_contacts(labels: np.ndarray, pore: int = 0) -> tuple[np.ndarray, int]:
    """Turn edge- and corner-only contacts of the pore into face paths.

    The voxels :func:`tomofem.image.connectivity.bridge_diagonal_contacts`
    adds to the pore (one per edge contact, two per corner contact) become
    pore; face connectivity (6) of the result then equals 26-connectivity of
    the pore in the input, and solid voxels that touched only diagonally
    across such a contact no longer touch.

    Parameters
    ----------
    labels
        3D label indices.
    pore
        Label index of the phase that is 26-connected.

    Returns
    -------
    labels, changed
        The bridged copy and the number of voxels turned into pore.
    """
    im = np.asarray(labels) == pore
    added = bridge_diagonal_contacts(im) & ~im
    lab = np.array(labels, copy=True)
    lab[added] = pore
    changed = int(added.sum())
    if changed:
        log.info("connectivity: %d voxels bridge edge/corner-only pore contacts", changed)
    return lab, changed


@dataclass(frozen=True)
class PhaseConnectivity:
    """Connectivity of one phase in the image and in the mesh.

    Attributes
    ----------
    label
        Label index of the phase (phase id = label + 1).
    image_connectivity
        Neighbourhood used on the voxels (26 pore, 6 solids: dual convention).
    image_components, mesh_components
        Number of connected clusters (mesh: cells joined through faces).
    image_spanning_fraction, mesh_spanning_fraction
        Volume fraction of the box held by clusters touching both faces
        normal to each axis, per axis (x, y, z) [-].
    """

    label: int
    image_connectivity: int
    image_components: int
    mesh_components: int
    image_spanning_fraction: tuple[float, float, float]
    mesh_spanning_fraction: tuple[float, float, float]


@dataclass(frozen=True)
class ConnectivityReport:
    """Per-phase connectivity of an image and its mesh (JSON-serialisable via ``to_dict``)."""

    phases: tuple[PhaseConnectivity, ...]

    def to_dict(self) -> dict:
        """Plain dict form."""
        return asdict(self)


def _image_phase(labels: np.ndarray, label: int) -> tuple[int, int, list[float]]:
    conn = 26 if label == 0 else 6
    st = ndimage.generate_binary_structure(3, {6: 1, 26: 3}[conn])
    ids, ncomp = ndimage.label(labels == label, structure=st)
    out = []
    for axis in range(3):
        lo = np.unique(np.take(ids, 0, axis=axis))
        hi = np.unique(np.take(ids, -1, axis=axis))
        span = np.intersect1d(lo[lo > 0], hi[hi > 0])
        out.append(float(np.isin(ids, span).sum()) / labels.size if len(span) else 0.0)
    return conn, int(ncomp), out


def mesh_components(tm: TetMesh) -> np.ndarray:
    """Component index of each cell: cells of one phase joined through shared faces."""
    _, face_of, _ = _unique_faces(tm.cells)
    flat = face_of.ravel()
    cell = np.repeat(np.arange(tm.num_cells), 4)
    order = np.argsort(flat, kind="stable")
    f, c = flat[order], cell[order]
    pair = f[1:] == f[:-1]
    a, b = c[:-1][pair], c[1:][pair]
    same = tm.cell_tags[a] == tm.cell_tags[b]
    g = sparse.coo_matrix(
        (np.ones(int(same.sum())), (a[same], b[same])), shape=(tm.num_cells, tm.num_cells)
    )
    return connected_components(g, directed=False)[1]


def compare_connectivity(labels: np.ndarray, tm: TetMesh) -> ConnectivityReport:
    """Components and spanning fractions per phase, image (dual convention) vs mesh.

    Parameters
    ----------
    labels
        The label image the mesh was made from (label index = phase id - 1).
    tm
        The mesh.
    """
    comp = mesh_components(tm)
    vol = tet_volumes(tm.points, tm.cells)
    box_vol = float(np.prod(tm.box[1] - tm.box[0]))
    tol = 1e-9 * float(np.linalg.norm(tm.box[1] - tm.box[0]))
    out = []
    for label in (int(x) for x in np.unique(labels)):
        pid = tags.phase_id(label)
        conn, ncomp, ispan = _image_phase(labels, label)
        mine = tm.cell_tags == pid
        mspan = []
        for axis in range(3):
            x = tm.points[tm.cells[mine], axis]  # (m, 4)
            lo = np.unique(comp[mine][(np.abs(x - tm.box[0, axis]) <= tol).sum(axis=1) >= 3])
            hi = np.unique(comp[mine][(np.abs(x - tm.box[1, axis]) <= tol).sum(axis=1) >= 3])
            span = np.intersect1d(lo, hi)
            mspan.append(float(vol[mine & np.isin(comp, span)].sum()) / box_vol)
        out.append(
            PhaseConnectivity(
                label=label,
                image_connectivity=conn,
                image_components=ncomp,
                mesh_components=len(np.unique(comp[mine])),
                image_spanning_fraction=tuple(ispan),
                mesh_spanning_fraction=tuple(mspan),
            )
        )
    return ConnectivityReport(tuple(out))
