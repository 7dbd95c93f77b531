"""Crash-safe checkpoints of long runs: mesh, fields, loop state and RNG state in one HDF5 file.

A checkpoint holds everything a run needs to continue exactly where it
stopped: the tagged mesh, the values of named P1 fields (unknowns and the
histories of a multistep scheme), the loop state (time, step size, counters,
the series recorded so far, solver history) and, for stochastic loops, the
state of a ``numpy.random.Generator``.

Partition independence
    Mesh vertices, cells and field values are stored in the mesh's *original
    input ordering* (``mesh.geometry.input_global_indices``,
    ``mesh.topology.original_cell_index``), not in the order of one run's
    partition. A run resumed on the same number of ranks continues bitwise
    identically (values are copied, never interpolated); one resumed on a
    different number of ranks continues from the same state.

Atomicity
    Rank 0 assembles the whole file in memory and writes it with
    :func:`tomofem.io.atomic.write_bytes` (temporary file, ``fsync``,
    ``rename``): a crash or a full disk mid-write leaves the previous
    checkpoint intact and no partial file behind. A failed write raises
    :class:`~tomofem.errors.RunFolderError` on every rank, not only rank 0.

Layout (``h5ls -r``)::

    /            attrs: format="tomofem-checkpoint", version, written, mpi_ranks
    /state       JSON text of the loop state (floats round-trip exactly)
    /rng         JSON text of a numpy bit-generator state (if given)
    /mesh/points, cells, cell_tags, facets, facet_tags, box   (input ordering)
    /fields/NAME/input_index, values   (sorted by input vertex index)

:func:`read_mesh` rebuilds the distributed DOLFINx mesh with its tags from the
file alone, so a resumed run does not need the original image. A small
``checkpoint.xdmf`` written next to it points into ``/mesh``, so ParaView and
``dolfinx.io.XDMFFile(comm, "checkpoint.xdmf", "r").read_mesh()`` /
``read_meshtags(mesh, "phases" | "facets")`` read the stored mesh directly.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tomofem.errors import ConfigError, RunFolderError
from tomofem.io.atomic import write_bytes

log = logging.getLogger(__name__)

FORMAT = "tomofem-checkpoint"
VERSION = 1
#: File name of a run folder's checkpoint.
CHECKPOINT_NAME = "checkpoint.h5"


# --------------------------------------------------------------------------- orderings


def dof_input_indices(V: Any) -> np.ndarray:
    """Original input vertex index of every local dof (owned and ghost) of a P1 space.

    Parameters
    ----------
    V
        A first-order Lagrange space (scalar or blocked) on a mesh or a
        submesh; submesh geometries keep their parent's input indices, so
        fields on different submeshes of one mesh share one numbering.

    Returns
    -------
    numpy.ndarray
        ``int64`` array of length ``(size_local + num_ghosts)``; for a blocked
        space the index of scalar component ``c`` of dof ``d`` is
        ``bs * input_index[d] + c`` (see :func:`_flat_input_indices`).
    """
    element = V.ufl_element()
    degree = getattr(element, "embedded_superdegree", None)
    family = str(getattr(element, "family_name", "P"))
    if degree != 1 or family not in ("P", "Q", "Lagrange"):
        raise ConfigError(
            f"checkpoint: field space {family}{degree} is not first-order Lagrange; "
            "checkpoints store P1 fields by input vertex (interpolate into P1 first)"
        )
    mesh = V.mesh
    igi = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)
    gdofs = mesh.geometry.dofmaps[0]
    dofs = V.dofmap.list
    imap = V.dofmap.index_map
    out = np.full(imap.size_local + imap.num_ghosts, -1, dtype=np.int64)
    out[dofs.ravel()] = igi[gdofs.ravel()]
    if np.any(out < 0):
        raise ConfigError("checkpoint: a dof of the field is in no cell (unsupported space)")
    return out


def _flat_input_indices(V: Any) -> np.ndarray:
    """Input index of every local scalar entry of ``V`` (blocked spaces expanded)."""
    idx = dof_input_indices(V)
    bs = int(V.dofmap.index_map_bs)
    return (idx[:, None] * bs + np.arange(bs)[None, :]).ravel()


def _gather_field(func: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Owned (input index, value) pairs of ``func`` gathered on rank 0, sorted by index."""
    V = func.function_space
    comm = V.mesh.comm
    bs = int(V.dofmap.index_map_bs)
    n_owned = V.dofmap.index_map.size_local * bs
    idx = _flat_input_indices(V)[:n_owned]
    vals = np.asarray(func.x.array[:n_owned])
    parts = comm.gather((idx, vals), root=0)
    if comm.rank != 0:
        return None
    all_idx = np.concatenate([p[0] for p in parts])
    all_val = np.concatenate([p[1] for p in parts])
    order = np.argsort(all_idx, kind="stable")
    return all_idx[order], all_val[order]


def _gather_mesh(dmesh: Any) -> dict[str, np.ndarray] | None:
    """Points, cells and tags of a distributed mesh in input ordering, on rank 0."""
    from tomofem._fenics import dolfinx

    mesh = dmesh.mesh
    comm = mesh.comm
    tdim = mesh.topology.dim
    igi = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)
    n_cells = mesh.topology.index_map(tdim).size_local
    cells_geo = mesh.geometry.dofmaps[0][:n_cells]
    orig = np.asarray(mesh.topology.original_cell_index, dtype=np.int64)[:n_cells]
    ctag = np.zeros(n_cells, dtype=np.int32)
    ct = dmesh.cell_tags
    owned = ct.indices < n_cells
    ctag[ct.indices[owned]] = ct.values[owned]
    mesh.topology.create_connectivity(tdim - 1, tdim)
    n_facets = mesh.topology.index_map(tdim - 1).size_local
    ft = dmesh.facet_tags
    fmask = ft.indices < n_facets
    fidx = ft.indices[fmask].astype(np.int32)
    fgeo = dolfinx.mesh.entities_to_geometry(mesh, tdim - 1, fidx)
    local = {
        "vertices": (igi, mesh.geometry.x[:, :3].copy()),
        "cells": (orig, igi[cells_geo], ctag),
        "facets": (np.sort(igi[fgeo], axis=1), ft.values[fmask].astype(np.int32)),
    }
    parts = comm.gather(local, root=0)
    if comm.rank != 0:
        return None
    vid = np.concatenate([p["vertices"][0] for p in parts])
    vx = np.concatenate([p["vertices"][1] for p in parts])
    points = np.empty((int(vid.max()) + 1, 3))
    points[vid] = vx
    cid = np.concatenate([p["cells"][0] for p in parts])
    cells = np.empty((len(cid), tdim + 1), dtype=np.int64)
    cells[cid] = np.concatenate([p["cells"][1] for p in parts])
    ctags = np.empty(len(cid), dtype=np.int32)
    ctags[cid] = np.concatenate([p["cells"][2] for p in parts])
    facets = np.concatenate([p["facets"][0] for p in parts])
    ftags = np.concatenate([p["facets"][1] for p in parts])
    order = np.lexsort(facets.T[::-1])
    return {
        "points": points,
        "cells": cells,
        "cell_tags": ctags,
        "facets": facets[order],
        "facet_tags": ftags[order],
        "box": np.asarray(dmesh.box, dtype=float),
    }


# --------------------------------------------------------------------------- write


def _collective_raise(comm: Any, error: str | None) -> None:
    error = comm.bcast(error, root=0)
    if error is not None:
        raise RunFolderError(error)


def write_checkpoint(
    path: str | Path,
    functions: Mapping[str, Any],
    state: Mapping[str, Any],
    dmesh: Any = None,
    rng: np.random.Generator | None = None,
    comm: Any = None,
) -> Path:
    """Write a checkpoint atomically (collective: call on every rank).

    Parameters
    ----------
    path
        Destination file (``RUN/checkpoint.h5``); its folder must exist. The
        previous file, if any, is replaced only once the new one is complete.
    functions
        Named P1 ``dolfinx.fem.Function`` s to store, e.g. the unknowns and
        the previous time levels of a BDF2 scheme (``"c_e"``, ``"c_e@n"``).
    state
        JSON-serialisable loop state: time, step size, counters, the series
        recorded so far, solver history. Floats round-trip exactly.
    dmesh
        A :class:`tomofem.meshing.DolfinxMesh` to store with its tags (so the
        checkpoint alone can restart the run); ``None`` stores no mesh.
    rng
        A random generator whose state a resumed run must continue from.
    comm
        Communicator (default: that of the first function, or of ``dmesh``).

    Raises
    ------
    RunFolderError
        On every rank, if the file cannot be written (missing or read-only
        folder, full disk); the previous checkpoint is then unchanged.
    """
    import h5py

    if comm is None:
        if functions:
            comm = next(iter(functions.values())).function_space.mesh.comm
        elif dmesh is not None:
            comm = dmesh.mesh.comm
        else:
            from tomofem._fenics import MPI

            comm = MPI.COMM_WORLD
    dest = Path(path)
    try:
        state_text = json.dumps(dict(state))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"checkpoint state is not JSON-serialisable: {exc}") from exc
    fields = {name: _gather_field(f) for name, f in functions.items()}
    mesh_arrays = _gather_mesh(dmesh) if dmesh is not None else None
    error = None
    if comm.rank == 0:
        buf = io.BytesIO()
        with h5py.File(buf, "w") as h5:
            h5.attrs["format"] = FORMAT
            h5.attrs["version"] = VERSION
            h5.attrs["written"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
            h5.attrs["mpi_ranks"] = int(comm.size)
            h5["state"] = state_text
            if rng is not None:
                h5["rng"] = json.dumps(rng.bit_generator.state)
            if mesh_arrays is not None:
                g = h5.create_group("mesh")
                for key, arr in mesh_arrays.items():
                    g[key] = arr
            fg = h5.create_group("fields")
            for name, (idx, vals) in fields.items():  # type: ignore[misc]
                g = fg.create_group(name)
                g["input_index"] = idx
                g["values"] = vals
        try:
            write_bytes(dest, buf.getvalue())
            if mesh_arrays is not None:  # ParaView / dolfinx.io.XDMFFile read the mesh from it
                write_bytes(dest.with_suffix(".xdmf"), _xdmf(dest.name, mesh_arrays).encode())
        except RunFolderError as exc:
            error = f"checkpoint not written: {exc}"
    _collective_raise(comm, error)
    return dest


def _xdmf(h5_name: str, m: dict[str, np.ndarray]) -> str:
    """XDMF 3 text pointing into the checkpoint's ``/mesh`` group (mesh, phases, facets)."""
    n_pts, n_cells, n_facets = len(m["points"]), len(m["cells"]), len(m["facets"])

    def item(path: str, dims: str, kind: str) -> str:
        size = m[path].dtype.itemsize  # int64 vertices, int32 tags, float64 points
        return (
            f'<DataItem Dimensions="{dims}" NumberType="{kind}" Precision="{size}" '
            f'Format="HDF">{h5_name}:/mesh/{path}</DataItem>'
        )

    geometry = f'<Geometry GeometryType="XYZ">{item("points", f"{n_pts} 3", "Float")}</Geometry>'
    cells = (
        f'<Topology TopologyType="Tetrahedron" NumberOfElements="{n_cells}" NodesPerElement="4">'
        f"{item('cells', f'{n_cells} 4', 'Int')}</Topology>"
    )
    facets = (
        f'<Topology TopologyType="Triangle" NumberOfElements="{n_facets}" NodesPerElement="3">'
        f"{item('facets', f'{n_facets} 3', 'Int')}</Topology>"
    )
    return (
        '<?xml version="1.0"?>\n<Xdmf Version="3.0" xmlns:xi="http://www.w3.org/2001/XInclude">'
        "<Domain>"
        f'<Grid Name="mesh" GridType="Uniform">{cells}{geometry}</Grid>'
        f'<Grid Name="phases" GridType="Uniform">{cells}{geometry}'
        '<Attribute Name="phases" AttributeType="Scalar" Center="Cell">'
        f"{item('cell_tags', f'{n_cells}', 'Int')}</Attribute></Grid>"
        f'<Grid Name="facets" GridType="Uniform">{facets}{geometry}'
        '<Attribute Name="facets" AttributeType="Scalar" Center="Cell">'
        f"{item('facet_tags', f'{n_facets}', 'Int')}</Attribute></Grid>"
        "</Domain></Xdmf>\n"
    )


# --------------------------------------------------------------------------- read


def _open(path: Path):
    import h5py

    if not path.is_file():
        raise RunFolderError(
            f"no checkpoint at {path}; resume needs the folder of a run that wrote one "
            "(checkpoint_every > 0, or a run stopped by a signal or a step-size floor)"
        )
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise RunFolderError(
            f"checkpoint {path} is unreadable or truncated ({exc}); restart the run "
            "(checkpoints are written atomically, so this file was not written by tomofem)"
        ) from exc
    if h5.attrs.get("format") != FORMAT:
        h5.close()
        raise RunFolderError(f"{path} is an HDF5 file but not a tomofem checkpoint")
    return h5


def read_checkpoint(
    path: str | Path,
    functions: Mapping[str, Any] | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """Restore named fields (and an RNG) from a checkpoint; return the loop state.

    Parameters
    ----------
    path
        A file written by :func:`write_checkpoint`.
    functions
        Named P1 functions to fill, on the same mesh (any partition); every
        local dof, ghosts included, gets the stored value of its input vertex.
    rng
        A generator whose state is set to the stored one.

    Raises
    ------
    RunFolderError
        If the file is missing, truncated, or not a checkpoint.
    ConfigError
        If a requested field is absent or the mesh does not match.
    """
    p = Path(path)
    with _open(p) as h5:
        state = json.loads(h5["state"][()].decode())
        if rng is not None:
            if "rng" not in h5:
                raise ConfigError(f"checkpoint {p} holds no RNG state, but the run needs one")
            rng.bit_generator.state = json.loads(h5["rng"][()].decode())
        for name, func in (functions or {}).items():
            if f"fields/{name}" not in h5:
                have = sorted(h5["fields"].keys())
                raise ConfigError(
                    f"checkpoint {p} has no field {name!r} (it has {have}); resume with the "
                    "configuration the run was started with"
                )
            idx = h5[f"fields/{name}/input_index"][()]
            vals = h5[f"fields/{name}/values"][()]
            want = _flat_input_indices(func.function_space)
            pos = np.searchsorted(idx, want)
            pos = np.minimum(pos, len(idx) - 1)
            if len(idx) == 0 or np.any(idx[pos] != want):
                raise ConfigError(
                    f"checkpoint {p}: field {name!r} was written for another mesh (vertices "
                    "missing); resume on the mesh the run was started with"
                )
            func.x.array[:] = vals[pos]
    return state


def read_mesh(path: str | Path, comm: Any) -> Any:
    """Rebuild the distributed, tagged mesh stored in a checkpoint.

    Returns
    -------
    tomofem.meshing.DolfinxMesh
        Built from the stored input-ordered arrays exactly as the original run
        built its mesh (on rank 0, then distributed).
    """
    from tomofem.meshing import TetMesh, to_dolfinx

    p = Path(path)
    tm, error = None, None
    if comm.rank == 0:
        try:
            with _open(p) as h5:
                if "mesh" not in h5:
                    raise ConfigError(f"checkpoint {p} stores no mesh; rebuild it from the image")
                m = {k: h5[f"mesh/{k}"][()] for k in h5["mesh"]}
            tm = TetMesh(
                m["points"], m["cells"], m["cell_tags"], m["facets"], m["facet_tags"], m["box"]
            )
        except (RunFolderError, ConfigError) as exc:  # tell the other ranks before they wait
            error = exc
    error = comm.bcast(error, root=0)
    if error is not None:
        raise error
    return to_dolfinx(tm, comm)
