"""Cost of the whole FEM answer (meshing included) against the voxel FVM on the same image.

Issue 14's cost target: for images of 100^3 voxels or more, the default FEM
tortuosity (level-set mesh, hand-off to DOLFINx, P1 along three axes) costs
no more wall time than the voxel finite-volume solve (three axes). Both run
in this one process, one after the other, ``--repeats`` times; the record
keeps wall and CPU seconds (CPU time is what a loaded, shared machine cannot
inflate), their medians and the FEM/voxel ratios. Run::

    OMP_NUM_THREADS=1 .venv/bin/python bench/fem_vs_voxel.py [--repeats 3]

Cases: the real electrode's crop [78:178]^3 (pore phase; skipped without
../shared/data/electrode.tiff) and a synthetic 100^3 packing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import record

from tomofem._fenics import MPI  # loads dolfinx first
from tomofem.homogenization.tortuosity import tortuosity_fem
from tomofem.homogenization.voxel_fvm import tortuosity_voxel
from tomofem.image import synthetic
from tomofem.meshing.levelset import mesh_levelset
from tomofem.meshing.tetmesh import to_dolfinx
from tomofem.tags import Phase

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "electrode.tiff"


def cases() -> dict[str, np.ndarray]:
    out = {}
    if DATA.exists():
        import tifffile

        im = tifffile.imread(DATA)[78:178, 78:178, 78:178]
        out["real-crop100-3phase"] = np.searchsorted([0, 85, 170], im).astype(np.uint8)
    solid = synthetic.random_overlapping_spheres(100, porosity=0.45, radius=8.0, seed=0)
    out["synthetic-100-2phase"] = np.asarray(solid, dtype=np.uint8)
    return out


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def voxel(lab: np.ndarray):
    return [tortuosity_voxel(lab == 0, ax).tau for ax in range(3)]


def fem(lab: np.ndarray):
    tm, _ = mesh_levelset(lab, 1.0)
    dm = to_dolfinx(tm, MPI.COMM_WORLD)
    return [
        tortuosity_fem(dm.mesh, dm.cell_tags, {int(Phase.PORE): 1.0}, ax).tau for ax in range(3)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    res = {}
    for name, lab in cases().items():
        rows = {"voxel": [], "fem": []}
        taus = {}
        for _ in range(args.repeats):
            for key, fn in (("voxel", voxel), ("fem", fem)):
                t, wall, cpu = timed(lambda f=fn, im=lab: f(im))
                rows[key].append({"wall_s": wall, "cpu_s": cpu})
                taus[key] = t
        med = {
            k: {m: statistics.median(r[m] for r in v) for m in ("wall_s", "cpu_s")}
            for k, v in rows.items()
        }
        res[name] = {
            "shape": list(lab.shape),
            "tau": taus,
            "runs": rows,
            "median": med,
            "ratio_fem_over_voxel": {
                m: med["fem"][m] / med["voxel"][m] for m in ("wall_s", "cpu_s")
            },
        }
        print(name, res[name]["median"], res[name]["ratio_fem_over_voxel"], flush=True)
    print(record("fem_vs_voxel", res))


if __name__ == "__main__":
    main()
