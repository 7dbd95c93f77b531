"""Benchmark: a whole electrode image meshed on every rank and its pore tortuosity along x, y, z.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/mpirun -n 2 .venv/bin/python bench/electrode_full.py
    OMP_NUM_THREADS=1 .venv/bin/python bench/electrode_full.py --size 128    # a crop, one rank
    OMP_NUM_THREADS=1 .venv/bin/mpirun -n 2 .venv/bin/python bench/electrode_full.py \
        --synthetic 512 --interface-size 4

``--size N`` (default 256, the whole shared electrode ``../shared/data/electrode.tiff``,
labels 0 / 85 / 170 = pore / NMC / CBD) takes the centred ``N^3`` crop;
``--synthetic N`` instead generates a seeded three-phase electrode of ``N^3``
voxels on every rank (overlapping spheres, porosity 0.45, radius 8 voxels,
plus a binder film), the same on every rank by construction.

What runs, as the pipeline runs it under MPI (``mesh.distributed = "auto"``):

1. ``mesh``: :func:`tomofem.meshing.distributed.distributed_levelset` on the
   label array (every rank cuts its own slab; connectivity guard on), then
   the collective :func:`tomofem.meshing.distributed_checks.check_distributed`;
2. ``tau_<axis>``: :func:`tomofem.homogenization.tortuosity.tortuosity_fem`
   of the pore phase along each axis (P1, the default solver settings; the
   AMG hierarchy is reused across axes).

Every stage is timed between barriers (wall seconds, rank 0) and by each
rank's CPU time (``time.process_time``; MPICH's busy waiting in collectives
counts as CPU, so these bound the work from above); the peak
resident memory of each rank comes from ``getrusage``. Reference: TauFactor
(voxel FVM) gives tau_x = 2.0776 for the whole image (``../shared/data/README``)
and its CPU solver took 284 s per axis on this machine's 2 cores (issue #19).

Results: ``bench/results/electrode_full_<case>_np<ranks>.json`` (bench/_record.py schema).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _record import record  # noqa: E402

from tomofem import tags  # noqa: E402
from tomofem._fenics import MPI  # noqa: E402
from tomofem.homogenization.tortuosity import tortuosity_fem  # noqa: E402
from tomofem.meshing.distributed import distributed_levelset  # noqa: E402
from tomofem.meshing.distributed_checks import check_distributed  # noqa: E402
from tomofem.meshing.levelset import LevelSetOptions  # noqa: E402

DATA = Path(os.environ.get("TOMOFEM_SHARED_DATA", REPO.parent / "shared" / "data"))


def real_labels(size: int) -> np.ndarray:
    """The centred ``size^3`` crop of the shared electrode as label indices 0 / 1 / 2."""
    import tifffile

    raw = tifffile.imread(DATA / "electrode.tiff")
    lo = (np.array(raw.shape) - size) // 2
    crop = raw[lo[0] : lo[0] + size, lo[1] : lo[1] + size, lo[2] : lo[2] + size]
    return (crop // 85).astype(np.int8)


def synthetic_labels(size: int) -> np.ndarray:
    """A seeded three-phase electrode: overlapping NMC spheres with a binder film."""
    from tomofem.image.synthetic import add_binder, random_overlapping_spheres

    lab = random_overlapping_spheres((size,) * 3, 0.55, 8.0, seed=0).astype(np.int8)
    return add_binder(lab, 0.1, 2.0).astype(np.int8)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="centred crop of the real image")
    ap.add_argument("--synthetic", type=int, default=0, help="a synthetic N^3 image instead")
    ap.add_argument("--interface-size", type=float, default=2.5, help="lattice step [voxels]")
    ap.add_argument("--axes", default="xyz")
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    t, cpu = {}, {}

    def stage(name, fn, *a, **kw):
        comm.Barrier()
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(*a, **kw)
        cpu[name] = comm.gather(time.process_time() - c0, root=0)
        comm.Barrier()
        t[name] = time.perf_counter() - t0
        if comm.rank == 0:
            print(f"{name}: {t[name]:.1f} s, peak {_peak_mb():.0f} MB (rank 0)", flush=True)
        return out

    if args.synthetic:
        case = f"synthetic{args.synthetic}"
        lab = stage("image", synthetic_labels, args.synthetic)
    else:
        if not (DATA / "electrode.tiff").exists():
            sys.exit(f"bench/electrode_full.py: {DATA / 'electrode.tiff'} is absent")
        case = f"real{args.size}"
        lab = stage("image", real_labels, args.size)
    mem_image = _peak_mb()
    opts = LevelSetOptions(lattice_step=args.interface_size)
    dm, stats = stage("mesh", distributed_levelset, lab, 1.0, opts, comm)
    mem_mesh = _peak_mb()
    rep = stage("check", check_distributed, dm)
    pore = {tags.phase_id(0): 1.0}
    taus = {}
    for ax in args.axes:
        r = stage(f"tau_{ax}", tortuosity_fem, dm.mesh, dm.cell_tags, pore, "xyz".index(ax))
        taus[ax] = {
            "tau": r.tau,
            "k_eff": r.k_eff,
            "iterations": r.iterations,
            "unknowns": r.unknowns,
            "flux_mismatch": abs(r.flux_in - r.flux_out) / abs(r.flux_in),
            "timings": r.timings,
        }
    peaks = comm.gather([_peak_mb(), mem_image, mem_mesh], root=0)
    if comm.rank == 0:
        res = {
            "case": case,
            "shape": list(lab.shape),
            "interface_size": args.interface_size,
            "seconds": t,
            "seconds_mesh_and_tau": t["mesh"] + sum(t[f"tau_{a}"] for a in args.axes),
            # CPU seconds of each rank inside each stage (MPICH's busy waits count too):
            # on a shared machine the wall time above depends on the load, these do less
            "cpu_seconds_per_rank": cpu,
            "peak_rss_mb_per_rank": [p[0] for p in peaks],
            "rss_mb_after_image_per_rank": [p[1] for p in peaks],
            "rss_mb_after_mesh_per_rank": [p[2] for p in peaks],
            "mesh": {
                "cells": rep.num_cells,
                "vertices": rep.num_vertices,
                "volume_by_phase": rep.volume_by_phase,
                "min_dihedral_deg": rep.min_dihedral_deg,
                "count_below_1deg": rep.count_below_1deg,
                "untagged_interface_facets": rep.untagged_interface_facets,
                "box_volume_error": rep.box_volume_error,
                "stats": stats.to_dict(),
            },
            "tau": taus,
            "reference": {
                "taufactor_tau_x_full_image": 2.0776,
                "taufactor_cpu_seconds_per_axis_2_cores": 284,
            },
        }
        path = record(f"electrode_full_{case}_np{comm.size}", res, ranks=comm.size)
        print(path)


if __name__ == "__main__":
    main()
