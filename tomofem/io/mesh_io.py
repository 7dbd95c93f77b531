"""Write and read tagged tetrahedral meshes: XDMF for DOLFINx/ParaView, gmsh .msh, meshio formats.

Mesh once, load under MPI: meshing inside an ``mpirun`` job is slowed by the
idle ranks' busy-waiting, so :func:`write_xdmf` stores a
:class:`~tomofem.meshing.TetMesh` (with its phase cell tags and interface /
box-face facet tags) and :func:`read_xdmf` loads it on any number of ranks with
shared-facet ghosting. Phase names, box and route go to a JSON side file.

Every writer is atomic: files are written in a temporary folder next to the
destination and renamed into place (the HDF5 file first, so an XDMF file never
points at a missing one).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tomofem.errors import MeshingError
from tomofem.io.atomic import write_json
from tomofem.meshing.tetmesh import DolfinxMesh, TetMesh, tag_facets

CELL_TAGS = "phases"
FACET_TAGS = "facets"


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".mesh.json")


def _write_meta(path: Path, tm: TetMesh) -> None:
    write_json(
        _meta_path(path),
        {
            "phase_names": {str(k): v for k, v in tm.phase_names.items()},
            "box": np.asarray(tm.box).tolist(),
            "route": tm.route,
        },
    )


def _read_meta(path: Path) -> dict:
    meta = _meta_path(path)
    if not meta.exists():
        return {"phase_names": {}, "box": None, "route": ""}
    data = json.loads(meta.read_text())
    data["phase_names"] = {int(k): v for k, v in data.get("phase_names", {}).items()}
    return data


def _move_into_place(tmpdir: Path, dest: Path, names: list[str]) -> None:
    for name in names:  # heavy data first, the file that refers to it last
        os.replace(tmpdir / name, dest.parent / name)


def write_xdmf(tm: TetMesh, path: str | Path) -> Path:
    """Write ``tm`` as XDMF + HDF5 with meshtags ``phases`` (cells) and ``facets``.

    Readable by ParaView and by :func:`read_xdmf` (DOLFINx) on any number of
    ranks. Call on the rank holding the mesh; it uses ``MPI.COMM_SELF``.
    """
    from tomofem._fenics import MPI, dolfinx
    from tomofem.meshing import to_dolfinx

    dest = Path(path).with_suffix(".xdmf")
    if not dest.parent.is_dir():
        raise MeshingError(f"write_xdmf: folder {dest.parent} does not exist; create it first")
    dm = to_dolfinx(tm, MPI.COMM_SELF)
    tmpdir = Path(tempfile.mkdtemp(prefix=".tmp-mesh-", dir=dest.parent))
    try:
        with dolfinx.io.XDMFFile(MPI.COMM_SELF, str(tmpdir / dest.name), "w") as f:
            f.write_mesh(dm.mesh)
            dm.mesh.topology.create_connectivity(2, 3)
            f.write_meshtags(dm.cell_tags, dm.mesh.geometry)
            f.write_meshtags(dm.facet_tags, dm.mesh.geometry)
        _move_into_place(tmpdir, dest, [dest.with_suffix(".h5").name, dest.name])
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    _write_meta(dest, tm)
    return dest


def read_xdmf(path: str | Path, comm) -> DolfinxMesh:
    """Load a mesh written by :func:`write_xdmf`, distributed over ``comm``.

    Cells are partitioned with ``GhostMode.shared_facet`` (interface ``dS``
    integrals need both cells of a facet on one rank).
    """
    from tomofem._fenics import MPI, dolfinx

    src = Path(path).with_suffix(".xdmf")
    if not src.exists():
        raise MeshingError(f"read_xdmf: {src} not found; write it with write_xdmf first")
    with dolfinx.io.XDMFFile(comm, str(src), "r") as f:
        mesh = f.read_mesh(ghost_mode=dolfinx.mesh.GhostMode.shared_facet)
        mesh.topology.create_connectivity(2, 3)
        ctags = f.read_meshtags(mesh, CELL_TAGS)
        ftags = f.read_meshtags(mesh, FACET_TAGS)
    meta = _read_meta(src) if comm.rank == 0 else None
    meta = comm.bcast(meta, root=0)
    if meta["box"] is not None:
        box = np.asarray(meta["box"], dtype=float)
    else:
        x = mesh.geometry.x
        box = np.array(
            [comm.allreduce(x.min(axis=0), MPI.MIN), comm.allreduce(x.max(axis=0), MPI.MAX)]
        )
    return DolfinxMesh(mesh, ctags, ftags, meta["phase_names"], box)


def write_mesh(tm: TetMesh, path: str | Path, file_format: str | None = None) -> Path:
    """Write ``tm`` through meshio: ``.msh`` (gmsh 2.2, physical tags), ``.vtu``, ``.xdmf``...

    Cell tags (phases) and facet tags (interfaces, box faces per phase) are
    stored as cell data ``tag`` (``gmsh:physical`` and ``gmsh:geometrical`` in
    .msh files). Use :func:`write_xdmf` for files DOLFINx should read.
    """
    import meshio

    dest = Path(path)
    if not dest.parent.is_dir():
        raise MeshingError(f"write_mesh: folder {dest.parent} does not exist; create it first")
    fmt = file_format
    if fmt is None and dest.suffix == ".msh":
        fmt = "gmsh22"
    cells = [("tetra", tm.cells), ("triangle", tm.facets)]
    tagsets = [tm.cell_tags.astype(np.int32), tm.facet_tags.astype(np.int32)]
    if fmt == "gmsh22":
        cell_data = {"gmsh:physical": tagsets, "gmsh:geometrical": tagsets}
    else:
        cell_data = {"tag": tagsets}
    m = meshio.Mesh(tm.points, cells, cell_data=cell_data)
    tmpdir = Path(tempfile.mkdtemp(prefix=".tmp-mesh-", dir=dest.parent))
    try:
        meshio.write(
            tmpdir / dest.name, m, file_format=fmt, **({"binary": False} if fmt == "gmsh22" else {})
        )
        names = sorted(p.name for p in tmpdir.iterdir())
        names.sort(key=lambda n: n == dest.name)  # the named file last
        _move_into_place(tmpdir, dest, names)
    except Exception as exc:
        raise MeshingError(f"write_mesh: meshio could not write {dest}: {exc}") from exc
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    _write_meta(dest, tm)
    return dest


def read_mesh(path: str | Path) -> TetMesh:
    """Read a mesh written by :func:`write_mesh` (or any tetrahedral meshio file) on this rank.

    Cell tags come from ``tag`` / ``gmsh:physical`` cell data; facet tags are
    recomputed from the cell phases (:func:`tomofem.meshing.tag_facets`), which
    also checks the mesh is watertight.
    """
    import meshio

    src = Path(path)
    try:
        m = meshio.read(src)
    except Exception as exc:
        raise MeshingError(f"read_mesh: meshio could not read {src}: {exc}") from exc
    key = next((k for k in ("tag", "gmsh:physical", "phases") if k in m.cell_data), None)
    tets = [i for i, b in enumerate(m.cells) if b.type == "tetra"]
    if key is None or not tets:
        raise MeshingError(
            f"read_mesh: {src} has no tetrahedra with a 'tag' or 'gmsh:physical' cell array; "
            "write it with tomofem.io.mesh_io.write_mesh"
        )
    cells = np.concatenate([m.cells[i].data for i in tets]).astype(np.int64)
    phase = np.concatenate([np.asarray(m.cell_data[key][i]) for i in tets]).astype(np.int32)
    meta = _read_meta(src)
    points = np.asarray(m.points, dtype=np.float64)
    box = (
        np.asarray(meta["box"], dtype=float)
        if meta["box"] is not None
        else np.array([points.min(axis=0), points.max(axis=0)])
    )
    facets, ftags = tag_facets(points, cells, phase, box)
    return TetMesh(points, cells, phase, facets, ftags, box, meta["phase_names"], meta["route"])
