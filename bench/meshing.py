"""Benchmark: the surface-nets + gmsh route on synthetic two- and three-phase packings.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/meshing.py --sizes 64,100,200 --png
    OMP_NUM_THREADS=1 .venv/bin/python bench/meshing.py --sizes 64,100,200 --radius 12 \
        --out r12 --png
    OMP_NUM_THREADS=1 .venv/bin/python bench/meshing.py --sizes 64,100 \
        --route periodic-lattice --out periodic
    OMP_NUM_THREADS=1 .venv/bin/python bench/meshing.py --sizes 100 --radius 12 \
        --repeat 3 [--in-process] --out repeat[_in_process]

``--repeat`` runs each case several times, each in a fresh process, and every
result carries the SHA-256 of the mesh arrays (equal digests: bit-identical
meshes).

Each case runs in its own process under ``/usr/bin/time -v`` (peak resident
memory). For each: wall time per stage (surface nets + smoothing + offsets,
gmsh remesh + volume restore, HXT + sliver collapse) and per gmsh step within them
(topology, classification, parametrisation, surface remeshing, surface check,
volume meshing; the route runs in its reproducible child process unless
``--in-process``), the ``uptime`` load average before and after (the machine
is shared), vertices, cells, vertices per voxel, quality (min dihedral,
fraction below 5 degrees, min SICN, SICN below 0.1), phase-fraction errors
against the image, and the interface area density against marching cubes on
the smoothed indicator (``tomofem.image.metrics``,
whose surfaces end at the outer voxel centres: densities are compared).

Structures: two-phase = random sequential addition of spheres of radius 6
voxels (``--radius``) with a 1-voxel gap, porosity 0.72 (``random_sphere_packing``);
three-phase = the same packing with every third particle relabelled CBD
(label 2). The vertex count is set by the interface area: a surface mesh of
edge ``h`` has about ``S / (0.87 h^2)`` vertices on an interface of area ``S``
(equilateral triangles, 6 around a vertex), and the packing's area density is
``3 (1 - porosity) / R``, so ``--radius 12`` halves the interface vertices.
The periodic packing (``--route periodic-lattice``) uses porosity 0.75: random
sequential addition with periodic wrapping jams just above 0.72.
Results: ``bench/results/meshing.json`` (``meshing_<out>.json`` with
``--out``; atomic write).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def structure(n: int, phases: int, radius: float = 6.0) -> np.ndarray:
    """The benchmark image of ``n``^3 voxels with 2 or 3 phases, spheres of ``radius`` voxels."""
    from scipy import ndimage

    from tomofem.image.synthetic import random_sphere_packing

    attempts = int(2e5 * max(1.0, (n / 64) ** 3))  # RSA candidate budget grows with the box
    lab = random_sphere_packing(n, 0.72, radius, seed=7, gap=1.0, max_attempts=attempts)
    lab = lab.astype(np.uint8)
    if phases == 3:
        comp, k = ndimage.label(lab == 1)
        cbd = np.isin(comp, np.arange(3, k + 1, 3))
        lab[cbd] = 2
    return lab


def periodic_structure(n: int, phases: int, radius: float = 6.0) -> np.ndarray:
    """Periodic packing (spheres wrapped across the faces); CBD = every third sphere's voxels.

    The CBD particles are picked on the periodic image (components joined
    across the faces), so the three-phase image is periodic too.
    """
    from scipy import ndimage

    from tomofem.image.synthetic import random_sphere_packing

    attempts = int(2e5 * max(1.0, (n / 64) ** 3))
    lab = random_sphere_packing(
        n, 0.75, radius, seed=7, gap=1.0, periodic=True, max_attempts=attempts
    ).astype(np.uint8)
    if phases == 3:
        big = np.tile(lab == 1, (3, 3, 3))  # components of the tiled image, read in the centre
        comp, k = ndimage.label(big)
        mid = comp[n : 2 * n, n : 2 * n, n : 2 * n]
        lab[np.isin(mid, np.arange(3, k + 1, 3))] = 2
    return lab


def _load() -> list[float]:
    return [float(x) for x in os.getloadavg()]


def run_case(
    n: int, phases: int, png: str | None, route: str, reproducible: bool, radius: float
) -> dict:
    """Mesh one structure and measure it (runs in the child process)."""
    from tomofem.image.metrics import surface_area
    from tomofem.meshing import MeshOptions, check_mesh, gmsh_route, periodic
    from tomofem.meshing.pipeline import validate_labels
    from tomofem.meshing.tetmesh import sicn

    load_before = _load()
    make = periodic_structure if route == periodic.ROUTE else structure
    lab = validate_labels(make(n, phases, radius))
    opts = MeshOptions(periodic=route == periodic.ROUTE, reproducible=reproducible)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if route == periodic.ROUTE:
        tm = periodic.mesh(lab, (1.0, 1.0, 1.0), opts)
    else:
        tm = gmsh_route.mesh(lab, (1.0, 1.0, 1.0), opts, timings)
    total = time.perf_counter() - t0
    r = check_mesh(tm)
    q = sicn(tm.points, tm.cells)
    vol = sum(r.volume_by_phase.values())
    frac_err = {
        str(i): r.volume_by_phase.get(i + 1, 0.0) / vol - float(np.mean(lab == i))
        for i in range(phases)
    }
    # interface area density of each non-pore phase (all its interfaces) vs marching cubes
    area_err = {}
    for i in range(1, phases):
        ph = i + 1
        mesh_area = sum(
            a for t, a in r.area_by_tag.items() if 100 < t < 1000 and ph in divmod(t - 100, 10)
        )
        mc = surface_area(lab == i)
        area_err[str(i)] = (mesh_area / n**3) / (mc / (n - 1) ** 3) - 1.0
    sicn_bins = [-1.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    digest = hashlib.sha256()
    for a in (tm.points, tm.cells, tm.cell_tags, tm.facets, tm.facet_tags):
        digest.update(np.ascontiguousarray(a).tobytes())
    out = {
        "mesh_sha256": digest.hexdigest(),
        "n": n,
        "phases": phases,
        "radius": radius,
        "route": route,
        "reproducible": reproducible,
        "load_average_1_5_15_before": load_before,
        "load_average_1_5_15_after": _load(),
        "seconds_total": total,
        "seconds_by_stage": timings,
        "vertices": r.num_vertices,
        "cells": r.num_cells,
        "vertices_per_voxel": r.num_vertices / lab.size,
        # lower bound from the interfaces alone: S / (0.87 h^2) vertices at edge length h
        "interface_vertices_per_voxel_bound": sum(
            a for t, a in r.area_by_tag.items() if 100 < t < 1000
        )
        / (0.866 * opts.interface_size**2)
        / lab.size,
        "min_dihedral_deg": r.min_dihedral_deg,
        "frac_dihedral_below_5deg": r.frac_below_5deg,
        "min_sicn": float(q.min()),
        "count_sicn_below_0.1": int(np.sum(q < 0.1)),
        "box_volume_error": r.box_volume_error,
        "untagged_interface_facets": r.untagged_interface_facets,
        "phase_fraction_error_abs": frac_err,
        "interface_area_density_error_vs_marching_cubes": area_err,
        "sicn_histogram": np.histogram(q, bins=sicn_bins)[0].tolist(),
        "sicn_bins": sicn_bins,
        "dihedral_histogram": r.dihedral_histogram,
        "dihedral_bins": r.dihedral_bins,
    }
    if png:
        from tomofem.viz.plots import render_mesh

        render_mesh(tm.points, tm.cells, tm.cell_tags, png, title=f"{n}^3, {phases} phases")
        out["png"] = png
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64,100")
    ap.add_argument("--phases", default="2,3")
    ap.add_argument("--png", action="store_true", help="render the 3-phase case of the first size")
    ap.add_argument("--out", default="", help="results go to bench/results/meshing[_OUT].json")
    ap.add_argument(
        "--route", default="surface-nets-gmsh", help="surface-nets-gmsh or periodic-lattice"
    )
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="MeshOptions(reproducible=False): mesh in this process, not in a child",
    )
    ap.add_argument("--radius", type=float, default=6.0, help="sphere radius [voxels]")
    ap.add_argument("--repeat", type=int, default=1, help="run each case K times (fresh processes)")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # "n,phases[,png]": child mode
    args = ap.parse_args()
    if args.case:
        parts = args.case.split(",")
        png = parts[2] if len(parts) > 2 else None
        res = run_case(
            int(parts[0]), int(parts[1]), png, args.route, not args.in_process, args.radius
        )
        print("RESULT " + json.dumps(res))
        return
    results = []
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cases = [
        (i, n, phases, k)
        for i, n in enumerate(int(s) for s in args.sizes.split(","))
        for phases in (int(p) for p in args.phases.split(","))
        for k in range(args.repeat)
    ]
    for i, n, phases, k in cases:
        case = f"{n},{phases}"
        if args.png and i == 0 and phases == 3 and k == 0:
            suffix = f"_{args.out}" if args.out else ""
            png = REPO / "bench" / "results" / f"meshing_{n}_{phases}phase{suffix}.png"
            case += f",{png}"
        cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--case", case]
        cmd += ["--route", args.route, "--radius", str(args.radius)]
        cmd += ["--in-process"] if args.in_process else []
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            res = {
                "n": n,
                "phases": phases,
                "route": args.route,
                "error": proc.stderr.split("\tCommand being timed")[0][-800:],
            }
        else:
            res = json.loads(line[7:])
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        res["peak_rss_mb"] = int(m.group(1)) / 1024 if m else None
        cpu = re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr)
        res["cpu_s_process"] = sum(map(float, cpu)) if cpu else None  # incl. image + checks
        res["repeat"] = k
        print(json.dumps({a: v for a, v in res.items() if "histogram" not in a}), flush=True)
        results.append(res)
    from tomofem.io.atomic import write_json

    name = f"meshing_{args.out}.json" if args.out else "meshing.json"
    write_json(
        REPO / "bench" / "results" / name,
        {"command": " ".join(["bench/meshing.py", *sys.argv[1:]]), "cases": results},
    )


if __name__ == "__main__":
    main()
