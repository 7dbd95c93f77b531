"""Checks of a distributed mesh, made where it lives: every rank measures its own cells.

:func:`tomofem.meshing.tetmesh.check_mesh` and
:func:`tomofem.meshing.connectivity.compare_connectivity` need the whole
:class:`~tomofem.meshing.tetmesh.TetMesh` on one process. A mesh made by
:mod:`tomofem.meshing.distributed` never exists there, so the same figures are
computed here collectively from a :class:`~tomofem.meshing.tetmesh.DolfinxMesh`:
owned cells and owned facets are summed over ranks, and phase components are
found per rank (scipy's ``connected_components`` on the cell graph through
interior facets) and merged on rank 0 from the links between ranks only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from tomofem import tags
from tomofem.meshing.connectivity import ConnectivityReport, PhaseConnectivity, _image_phase
from tomofem.meshing.tetmesh import (
    DolfinxMesh,
    MeshReport,
    min_dihedral_angles,
    tet_volumes,
    triangle_areas,
)

DIHEDRAL_BINS = [0.0, 1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.6]


def merge_components(comm: Any, n_comp: int, links: np.ndarray) -> tuple[np.ndarray, int]:
    """Merge per-rank components into global clusters.

    Parameters
    ----------
    comm
        The communicator.
    n_comp
        Number of components found on this rank; rank ``r``'s components are
        numbered globally from ``exscan(n_comp)``.
    links
        ``(m, 2)`` global component numbers joined across ranks (this rank's share).

    Returns
    -------
    root, n
        Global cluster id of each of this rank's components, and the number of
        clusters (equal on every rank). Only the links travel to rank 0.
    """
    n_total = comm.allreduce(n_comp)
    all_links = comm.gather(np.asarray(links, dtype=np.int64).reshape(-1, 2), root=0)
    sizes = comm.gather(n_comp, root=0)
    chunks, n_clusters = None, 0
    if comm.rank == 0:
        lk = np.concatenate(all_links)
        merge = sparse.coo_matrix(
            (np.ones(lk.shape[0], dtype=np.int8), (lk[:, 0], lk[:, 1])), shape=(n_total, n_total)
        )
        n_clusters, root = connected_components(merge, directed=False)
        chunks = np.split(root.astype(np.int64), np.cumsum(sizes)[:-1])
    return comm.scatter(chunks, root=0), int(comm.bcast(n_clusters, root=0))


def _cell_values(dm: DolfinxMesh) -> tuple[np.ndarray, int, int]:
    """Phase tag of every local cell (owned then ghost), and the owned and local counts."""
    msh = dm.mesh
    imap = msh.topology.index_map(msh.topology.dim)
    n_owned, n_local = imap.size_local, imap.size_local + imap.num_ghosts
    phase = np.zeros(n_local, dtype=np.int64)
    phase[dm.cell_tags.indices] = dm.cell_tags.values
    return phase, n_owned, n_local


def facet_components(msh: Any, group: np.ndarray) -> tuple[np.ndarray, int]:
    """Cluster id of every local cell: cells of one group joined through shared facets.

    Works with and without ghost cells (a submesh has none): two ranks are
    linked through a ghost cell and its owner, and through a facet they share
    that each sees with one cell.

    Parameters
    ----------
    msh
        A DOLFINx mesh.
    group
        Group of every local cell (owned and ghost), e.g. its phase: cells of
        different groups are never joined.

    Returns
    -------
    labels, n
        Global cluster id per local cell (owned and ghost), consistent across
        ranks, and the number of clusters (collective).
    """
    from tomofem._fenics import dolfinx

    comm = msh.comm
    tdim = msh.topology.dim
    imap = msh.topology.index_map(tdim)
    n_owned, n_local = imap.size_local, imap.size_local + imap.num_ghosts
    msh.topology.create_connectivity(tdim - 1, tdim)
    f2c = msh.topology.connectivity(tdim - 1, tdim)
    off = np.asarray(f2c.offsets)
    arr = np.asarray(f2c.array)
    count = np.diff(off)
    two = np.flatnonzero(count == 2)
    a, b = arr[off[two]], arr[off[two] + 1]
    same = group[a] == group[b]
    g = sparse.coo_matrix(
        (np.ones(int(same.sum()), dtype=np.int8), (a[same], b[same])), shape=(n_local, n_local)
    )
    n_comp, comp = connected_components(g, directed=False)
    gcomp = comp.astype(np.int64) + (comm.exscan(n_comp) or 0)
    # ghost cells: their owner's component (a DG0 scatter carries it, exact below 2^53)
    f = dolfinx.fem.Function(dolfinx.fem.functionspace(msh, ("DG", 0)))
    dof = np.asarray(f.function_space.dofmap.list)[:, 0]
    f.x.array[dof[:n_owned]] = gcomp[:n_owned]
    f.x.scatter_forward()
    owner = np.rint(f.x.array[dof[n_owned:n_local]]).astype(np.int64)
    links = [np.stack([gcomp[n_owned:], owner], axis=1)]
    # facets seen with one cell here and one cell on the facet's owner: the owner's
    # component (+1, 0 where it has none) comes to the ghost copy of the facet
    fmap = msh.topology.index_map(tdim - 1)
    one = count == 1
    cell = arr[off[:-1][one]]
    side, side_group = dolfinx.la.vector(fmap), dolfinx.la.vector(fmap)
    side.array[:] = 0.0
    side.array[one] = gcomp[cell] + 1.0
    side_group.array[one] = group[cell]
    side.scatter_forward()
    side_group.scatter_forward()
    ghost = np.flatnonzero(one[fmap.size_local :]) + fmap.size_local
    other = np.rint(side.array[ghost]).astype(np.int64) - 1
    mine = arr[off[ghost]]
    joined = (other >= 0) & (np.rint(side_group.array[ghost]) == group[mine])
    links.append(np.stack([gcomp[mine][joined], other[joined]], axis=1))
    root, n = merge_components(comm, n_comp, np.concatenate(links))
    return root[comp], n


def cell_components(dm: DolfinxMesh) -> tuple[np.ndarray, int]:
    """Cluster id of every local cell: cells of one phase joined through shared facets.

    Returns
    -------
    labels, n
        Global cluster id per local cell (owned and ghost), consistent across
        ranks, and the number of clusters.
    """
    return facet_components(dm.mesh, _cell_values(dm)[0])


def mesh_spanning(dm: DolfinxMesh) -> dict[int, list[bool]]:
    """Whether each phase's face-connected cells span the box along x, y, z (collective).

    A cluster spans an axis when it has a cell on both box faces normal to it
    (the tagged box-face facets of its phase).
    """
    msh = dm.mesh
    comm = msh.comm
    tdim = msh.topology.dim
    labels, _ = cell_components(dm)
    phase, _, _ = _cell_values(dm)
    f2c = msh.topology.connectivity(tdim - 1, tdim)
    off, arr = np.asarray(f2c.offsets), np.asarray(f2c.array)
    ft = dm.facet_tags
    phases = sorted(int(p) for p in np.unique(np.concatenate(comm.allgather(np.unique(phase)))))
    out: dict[int, list[bool]] = {}
    for p in phases:
        spans = []
        for axis in range(3):
            ends = []
            for face in (2 * axis, 2 * axis + 1):
                facets = ft.indices[ft.values == tags.boundary_tag(p, face)]
                local = np.unique(labels[arr[off[facets]]])
                ends.append(np.unique(np.concatenate(comm.allgather(local))))
            spans.append(bool(np.intersect1d(ends[0], ends[1]).size))
        out[p] = spans
    return out


def image_spanning(labels: np.ndarray) -> dict[int, list[bool]]:
    """Whether each label's voxels span the box along x, y, z (dual convention), by phase id."""
    return {
        tags.phase_id(int(k)): [f > 0 for f in _image_phase(labels, int(k))[2]]
        for k in np.unique(labels)
    }


def percolation_difference(image: dict[int, list[bool]], mesh: dict[int, list[bool]]) -> str:
    """Readable list of phases and axes whose spanning differs between image and mesh."""
    out = []
    for pid, img in image.items():
        msh = mesh.get(pid, [False] * 3)
        for ax in range(3):
            if img[ax] != msh[ax]:
                where = "image, not in the mesh" if img[ax] else "mesh, not in the image"
                out.append(f"label {pid - 1} spans {'xyz'[ax]} in the {where}")
    return "; ".join(out)


def connectivity_report(dm: DolfinxMesh, labels: np.ndarray) -> ConnectivityReport:
    """Spanning per phase in the image and the mesh (components counted in the mesh only).

    A lighter :func:`~tomofem.meshing.connectivity.compare_connectivity` for a
    distributed mesh: spanning fractions are 1 or 0 (spans or not) on the mesh side.
    """
    msh_span = mesh_spanning(dm)
    comp, _ = cell_components(dm)
    phase, n_owned, _ = _cell_values(dm)
    comm = dm.mesh.comm
    out = []
    for k in (int(v) for v in np.unique(labels)):
        pid = tags.phase_id(k)
        conn, ncomp, ispan = _image_phase(labels, k)
        out.append(
            PhaseConnectivity(
                label=k,
                image_connectivity=conn,
                image_components=ncomp,
                mesh_components=len(
                    np.unique(
                        np.concatenate(
                            comm.allgather(np.unique(comp[:n_owned][phase[:n_owned] == pid]))
                        )
                    )
                ),
                image_spanning_fraction=tuple(ispan),
                mesh_spanning_fraction=tuple(float(s) for s in msh_span.get(pid, [False] * 3)),
            )
        )
    return ConnectivityReport(tuple(out))


def phase_surfaces(dm: DolfinxMesh, root: int = 0) -> dict[int, np.ndarray] | None:
    """Each phase's boundary triangles (interfaces and box faces), gathered on ``root``.

    Returns
    -------
    dict or None
        ``{phase id: (n, 3, 3) float32 corner coordinates}`` on ``root``,
        None on the other ranks (collective). A picture needs these, not the cells.
    """
    msh = dm.mesh
    comm = msh.comm
    tdim = msh.topology.dim
    from tomofem._fenics import dolfinx

    msh.topology.create_connectivity(tdim - 1, 0)
    ft = dm.facet_tags
    own = ft.indices < msh.topology.index_map(tdim - 1).size_local
    facets, values = ft.indices[own].astype(np.int32), ft.values[own]
    geo = dolfinx.mesh.entities_to_geometry(msh, tdim - 1, facets)
    tri = msh.geometry.x[np.asarray(geo)].astype(np.float32)
    mine: dict[int, list[np.ndarray]] = {}
    for t in np.unique(values):
        sel = tri[values == t]
        if 100 <= t < 1000:
            owners = tags.interface_phases(int(t))
        elif t >= 1000:
            owners = (tags.boundary_phase_face(int(t))[0],)
        else:
            continue
        for p in owners:
            mine.setdefault(int(p), []).append(sel)
    parts = comm.gather({p: np.concatenate(v) for p, v in mine.items()}, root=root)
    if comm.rank != root:
        return None
    out: dict[int, list[np.ndarray]] = {}
    for part in parts:
        for p, v in part.items():
            out.setdefault(p, []).append(v)
    return {p: np.concatenate(v) for p, v in sorted(out.items())}


def check_distributed(dm: DolfinxMesh) -> MeshReport:
    """:func:`~tomofem.meshing.tetmesh.check_mesh` for a distributed mesh (collective).

    Volumes, areas and angles are summed or reduced over owned cells and
    owned facets. A facet shared by more than two cells cannot exist in a
    DOLFINx mesh (``create_mesh`` refuses it), so ``nonmanifold_facets`` is 0.
    """
    from tomofem._fenics import MPI

    msh = dm.mesh
    comm = msh.comm
    tdim = msh.topology.dim
    phase, n_owned, _ = _cell_values(dm)
    x = msh.geometry.x
    geo = np.asarray(msh.geometry.dofmaps[0])[:n_owned]
    vols = tet_volumes(x, geo)
    owned_phase = phase[:n_owned]
    ph_all = sorted(set().union(*comm.allgather(set(np.unique(owned_phase).tolist()))))
    vol_by = {
        int(p): comm.allreduce(float(vols[owned_phase == p].sum()), op=MPI.SUM) for p in ph_all
    }
    box_vol = float(np.prod(dm.box[1] - dm.box[0]))
    total = comm.allreduce(float(vols.sum()), op=MPI.SUM)
    # facets: owned ones only, areas per tag and untagged interfaces
    fmap = msh.topology.index_map(tdim - 1)
    msh.topology.create_connectivity(tdim - 1, tdim)
    msh.topology.create_connectivity(tdim - 1, 0)
    f2c = msh.topology.connectivity(tdim - 1, tdim)
    off, arr = np.asarray(f2c.offsets), np.asarray(f2c.array)
    ft = dm.facet_tags
    own = ft.indices < fmap.size_local
    from tomofem._fenics import dolfinx

    fverts = dolfinx.mesh.entities_to_geometry(msh, tdim - 1, ft.indices[own].astype(np.int32))
    areas = triangle_areas(x, np.asarray(fverts))
    tag_all = sorted(set().union(*comm.allgather(set(np.unique(ft.values).tolist()))))
    area_by = {
        int(t): comm.allreduce(float(areas[ft.values[own] == t].sum()), op=MPI.SUM) for t in tag_all
    }
    two = np.flatnonzero(np.diff(off[: fmap.size_local + 1]) == 2)
    iface = two[phase[arr[off[two]]] != phase[arr[off[two] + 1]]]
    tagged = np.zeros(fmap.size_local + fmap.num_ghosts, dtype=bool)
    tagged[ft.indices[(ft.values >= 100) & (ft.values < 1000)]] = True
    untagged = comm.allreduce(int(np.sum(~tagged[iface])), op=MPI.SUM)
    chunks = range(0, n_owned, 2**18)
    dih = np.concatenate(
        [min_dihedral_angles(x, geo[i : i + 2**18]) for i in chunks] or [np.zeros(0)]
    )
    hist = comm.allreduce(np.histogram(dih, bins=DIHEDRAL_BINS)[0].astype(np.int64), op=MPI.SUM)
    n_cells = comm.allreduce(n_owned, op=MPI.SUM)
    return MeshReport(
        num_vertices=msh.topology.index_map(0).size_global,
        num_cells=n_cells,
        volume_by_phase=vol_by,
        box_volume_error=(total - box_vol) / box_vol,
        area_by_tag=area_by,
        inverted_cells=comm.allreduce(int(np.sum(vols <= 0)), op=MPI.SUM),
        nonmanifold_facets=0,
        untagged_interface_facets=untagged,
        min_dihedral_deg=comm.allreduce(float(dih.min(initial=180.0)), op=MPI.MIN),
        frac_below_5deg=comm.allreduce(int(np.sum(dih < 5.0)), op=MPI.SUM) / max(n_cells, 1),
        count_below_1deg=comm.allreduce(int(np.sum(dih < 1.0)), op=MPI.SUM),
        dihedral_histogram=[int(h) for h in hist],
        dihedral_bins=list(DIHEDRAL_BINS),
    )


__all__ = [
    "cell_components",
    "check_distributed",
    "connectivity_report",
    "facet_components",
    "image_spanning",
    "merge_components",
    "mesh_spanning",
    "percolation_difference",
    "phase_surfaces",
]
