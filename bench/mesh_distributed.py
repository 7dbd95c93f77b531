"""Distributed level-set meshing against serial meshing + rank-0 hand-off: time and memory per rank.

Three runs per case, each in its own process(es) so that peak memory is its own:

* ``serial``: ``mesh_levelset`` (connectivity ``smoothed``, as the distributed
  route) then ``to_dolfinx`` on one rank;
* ``dist1``: ``distributed_levelset`` on one rank;
* ``dist2``: ``distributed_levelset`` under ``mpirun -n 2``.

Cases: ``synthetic100`` (three-phase sphere packing with binder, 100^3, read
by the distributed runs from a ``.npy`` memmap: each rank touches only its
slab's rows) and ``real100`` (the shared electrode's [78:178]^3 crop, three
phases, read page by page from the TIFF by a block loader; skipped if the file
is absent). Reported per run: wall time (after imports and input set-up) and
its stages, peak resident memory per rank minus the memory after imports,
mesh sizes, phase fractions, interface areas per tag, the smallest dihedral
angle overall and (distributed) of cells touching a slab face, and with
``--tau`` the pore tortuosity along x (across the slab face).

    OMP_NUM_THREADS=1 .venv/bin/python bench/mesh_distributed.py [--cases synthetic100] [--tau]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("TOMOFEM_SHARED_DATA", REPO.parent / "shared" / "data"))
CROP = 78


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_input(case: str, folder: Path) -> dict:
    """Write the synthetic image (once) or locate the electrode; returns the worker's input spec."""
    n = int(case.removeprefix("synthetic").removeprefix("real"))
    if case.startswith("synthetic"):
        from tomofem.image.synthetic import add_binder, random_sphere_packing

        path = folder / f"{case}.npy"
        lab = random_sphere_packing(n, 0.62, 6.0, seed=0, max_attempts=2_000_000).astype(np.int8)
        np.save(path, add_binder(lab, 0.12, 2.0).astype(np.int8))
        return {"kind": "npy", "path": str(path), "n": n}
    path = DATA / "electrode.tiff"
    if not path.exists():
        return {}
    return {"kind": "tiff", "path": str(path), "n": n}


def _source(spec: dict):
    """The image for a worker: (array-like or loader, shape)."""
    n = spec["n"]
    if spec["kind"] == "npy":
        arr = np.load(spec["path"], mmap_mode="r")
        return arr, arr.shape
    import tifffile

    def loader(index):
        ix, iy, iz = index
        pages = range(CROP + ix.start, CROP + ix.stop)
        raw = tifffile.imread(spec["path"], key=pages)
        raw = raw.reshape(len(pages), *raw.shape[-2:])
        block = raw[:, CROP + iy.start : CROP + iy.stop, CROP + iz.start : CROP + iz.stop]
        return (block // 85).astype(np.int8)  # 0 / 85 / 170 -> 0 / 1 / 2

    return loader, (n, n, n)


def worker(mode: str, spec: dict, tau: bool) -> None:
    """One run; rank 0 prints one JSON line."""
    from mpi4py import MPI

    from tomofem import tags
    from tomofem._fenics import dolfinx  # noqa: F401  (import cost out of the timing)
    from tomofem.meshing import check_mesh, to_dolfinx
    from tomofem.meshing.distributed import distributed_levelset
    from tomofem.meshing.levelset import LevelSetOptions, mesh_levelset

    comm = MPI.COMM_WORLD
    opts = LevelSetOptions(connectivity="smoothed")
    src, shape = _source(spec)
    base = _rss_mb()
    comm.Barrier()
    t0 = time.perf_counter()
    out: dict = {"mode": mode, "ranks": comm.size}
    if mode == "serial":
        lab = np.asarray(src if not callable(src) else src(tuple(slice(0, n) for n in shape)))
        tm, stats = mesh_levelset(lab, 1.0, opts)
        t1 = time.perf_counter()
        dm = to_dolfinx(tm, comm)
        out["seconds_mesh"] = t1 - t0
        out["seconds_to_dolfinx"] = time.perf_counter() - t1
        r = check_mesh(tm)
        out |= {
            "cells": r.num_cells,
            "vertices": r.num_vertices,
            "mesh_fractions": stats.mesh_fractions,
            "iterations": stats.iterations,
            "stages": stats.times,
            "areas": {t: a for t, a in r.area_by_tag.items() if t < 1000},
            "min_dihedral_deg": r.min_dihedral_deg,
        }
    else:
        dm, st = distributed_levelset(src, 1.0, opts, comm, shape=shape)
        out["stages"] = st.times  # rank 0's
        out |= {
            "cells": st.num_cells,
            "vertices": st.num_vertices,
            "mesh_fractions": st.mesh_fractions,
            "iterations": st.iterations,
            "min_dihedral_deg": st.min_dihedral_deg,
            "min_dihedral_block_faces_deg": st.min_dihedral_block_faces_deg,
            "face_value_mismatch": st.face_value_mismatch,
            "face_snapped": st.face_snapped,
            "collapsed": st.collapsed,
            "halo_rows": st.halo,
            "slabs": st.slabs,
        }
        out["areas"] = _areas(dm, comm)
    comm.Barrier()
    out["seconds"] = time.perf_counter() - t0
    peaks = comm.gather(_rss_mb(), root=0)
    bases = comm.gather(base, root=0)
    if tau:
        from tomofem.homogenization.tortuosity import tortuosity_fem

        t2 = time.perf_counter()
        res = tortuosity_fem(dm.mesh, dm.cell_tags, {tags.phase_id(0): 1.0}, axis=0)
        out["tau_x_pore"] = res.tau
        out["seconds_tau"] = time.perf_counter() - t2
    if comm.rank == 0:
        out["peak_rss_mb_per_rank"] = peaks
        out["rss_after_imports_mb_per_rank"] = bases
        out["peak_minus_imports_mb_per_rank"] = [p - b for p, b in zip(peaks, bases, strict=True)]
        print("RESULT " + json.dumps(out, default=float), flush=True)


def _areas(dm, comm) -> dict[int, float]:
    """Interface area per tag of a distributed mesh (summed over ranks)."""
    from mpi4py import MPI

    from tomofem._fenics import dolfinx, ufl

    dS = ufl.Measure("dS", domain=dm.mesh, subdomain_data=dm.facet_tags)
    one = dolfinx.fem.Constant(dm.mesh, 1.0)
    local = [int(t) for t in np.unique(dm.facet_tags.values) if t < 1000]
    out = {}
    for t in sorted({t for tags_r in comm.allgather(local) for t in tags_r}):
        a = dolfinx.fem.assemble_scalar(dolfinx.fem.form(one("+") * dS(t)))
        out[t] = comm.allreduce(a, op=MPI.SUM)
    return out


def run(mode: str, spec: dict, tau: bool) -> dict:
    py = str(Path(sys.executable))
    cmd = [py, __file__, "--worker", mode, "--spec", json.dumps(spec)] + (["--tau"] if tau else [])
    if mode == "dist2":
        cmd = [str(Path(py).parent / "mpirun"), "-n", "2", *cmd]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line.removeprefix("RESULT "))
    raise RuntimeError(f"{mode} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="synthetic100,real100")
    ap.add_argument("--tau", action="store_true", help="pore tau_x on each mesh")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--spec", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(
            "serial" if args.worker == "serial" else "distributed", json.loads(args.spec), args.tau
        )
        return
    from bench._record import record

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            spec = make_input(case, Path(tmp))
            if not spec:
                print(f"{case}: skipped (no {DATA / 'electrode.tiff'})")
                continue
            for mode in ("serial", "dist1", "dist2"):
                res = run(mode, spec, args.tau) | {"case": case, "run": mode}
                brief = {k: res[k] for k in ("case", "run", "seconds", "cells")}
                brief["peak_mb"] = res["peak_minus_imports_mb_per_rank"]
                print(json.dumps(brief), flush=True)
                results.append(res)
    path = record("mesh_distributed", {"runs": results}, ranks=2)
    print(f"recorded {path}")


if __name__ == "__main__":
    main()
