"""Benchmark: the level-set route on the real electrode (crops and full volume).

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/meshing_real.py --cases crop100-2,crop100-3 --tau --png
    /usr/bin/time -v .venv/bin/python bench/meshing_real.py --cases full-3 --out full

For each case: wall time per stage (median of ``--repeats``), vertices, cells,
vertices per voxel, quality (min dihedral, fraction below 5 degrees, count
below 1 degree), phase-fraction errors against the image, interface area of
each phase against marching cubes on the same smoothed field, connectivity
(components and spanning fractions, image under the dual convention vs mesh),
the image module's own area estimate (:func:`tomofem.image.metrics.interface_areas`,
indicator smoothed by 0.8 voxel)
and peak resident memory, with the load average before and after. ``--tau``
adds the pore-phase tortuosity factor along x from a P1 conduction solve
(CG + GAMG, iterations reported) on the mesh, beside the voxel finite-volume
values with face-connected (6) and bridged diagonal (26) pore voxels;
``--png`` renders the three-phase crop.
Results go to ``bench/results/meshing_real[_<out>].json`` (atomic write).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tomofem.image.io import load_electrode  # noqa: E402
from tomofem.image.metrics import interface_areas  # noqa: E402
from tomofem.meshing import check_mesh  # noqa: E402
from tomofem.meshing.connectivity import compare_connectivity  # noqa: E402
from tomofem.meshing.levelset import LevelSetOptions, mesh_levelset, phase_fields  # noqa: E402

DATA = Path(os.environ.get("TOMOFEM_SHARED_DATA", REPO.parent / "shared" / "data"))


def crop(labels: np.ndarray, case: str) -> np.ndarray:
    """The label array of a case name ``crop<n>-<phases>`` or ``full-<phases>``."""
    where, phases = case.split("-")
    if where == "full":
        lab = labels
    else:
        n = int(where.removeprefix("crop"))
        lab = labels[78 : 78 + n, 78 : 78 + n, 78 : 78 + n]
    lab = np.ascontiguousarray(lab)
    return (lab > 0).astype(np.int8) if phases == "2" else lab.astype(np.int8)


def mc_areas(lab: np.ndarray, opts: LevelSetOptions, stats) -> dict[int, float]:
    """Marching-cubes area of each phase's boundary on the route's own biased field."""
    from skimage import measure

    phases = stats.phases
    g = phase_fields(lab, phases, opts)
    g += np.array([stats.biases[p] for p in phases], dtype=np.float32)[:, None, None, None]
    n = np.array(lab.shape)
    out = {}
    for k, p in enumerate(phases):
        f = g[k] - np.max(np.delete(g, k, axis=0), axis=0)
        f = np.pad(f, 1, mode="edge")
        v, tri, _, _ = measure.marching_cubes(f, 0.0)
        v -= 1.0
        cen = v[tri].mean(axis=1)
        keep = np.all((cen > -0.5) & (cen < n - 0.5), axis=1)  # inside the voxel box
        out[p] = float(measure.mesh_surface_area(v, tri[keep]))
        del f
    return out


def mesh_area_by_phase(report, phases) -> dict[int, float]:
    """Summed interface area of each phase's boundary (all its interface tags)."""
    out = {}
    for p in phases:
        pid = p + 1
        out[p] = sum(
            a
            for t, a in report.area_by_tag.items()
            if 100 < t < 1000 and pid in ((t - 100) // 10, (t - 100) % 10)
        )
    return out


def run_case(labels: np.ndarray, case: str, opts: LevelSetOptions, repeats: int) -> tuple:
    lab = crop(labels, case)
    load_before = os.getloadavg()
    times, cpu, stages = [], [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        tm, stats = mesh_levelset(lab, (1.0, 1.0, 1.0), opts)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)  # wall time inflates on the shared machine
        rss_meshing = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        stages.append(stats.times)
    rep = check_mesh(tm)
    mc = mc_areas(lab, opts, stats) if lab.size <= 200**3 else {}
    area = mesh_area_by_phase(rep, stats.phases)
    # the image module's estimate: marching cubes on the indicator smoothed by 0.8 voxel
    img = interface_areas(lab) if lab.size <= 200**3 else None
    img_area = {int(k): v for k, v in img.phase_areas.items()} if img else {}
    conn = compare_connectivity(lab, tm)
    res = {
        "case": case,
        "shape": list(lab.shape),
        "options": opts.to_dict(),
        "time_s_median": statistics.median(times),
        "time_s_all": times,
        "cpu_s_median": statistics.median(cpu),
        "cpu_s_all": cpu,
        "stage_times_s": stages[len(stages) // 2],
        "cuts": stats.iterations,
        "moved": stats.moved,
        "snapped": stats.snapped,
        "collapsed": stats.collapsed,
        "bridged_voxels": stats.bridged,
        "vertices": tm.num_vertices,
        "cells": tm.num_cells,
        "vertices_per_voxel": tm.num_vertices / lab.size,
        "conformal": rep.conformal,
        "untagged_interface_facets": rep.untagged_interface_facets,
        "box_volume_error": rep.box_volume_error,
        "min_dihedral_deg": rep.min_dihedral_deg,
        "frac_below_5deg": rep.frac_below_5deg,
        "count_below_1deg": rep.count_below_1deg,
        "dihedral_histogram": rep.dihedral_histogram,
        "dihedral_bins": rep.dihedral_bins,
        "image_fractions": stats.image_fractions,
        "mesh_fractions": stats.mesh_fractions,
        "fraction_error_abs": {
            p: stats.mesh_fractions[p] - stats.image_fractions[p] for p in stats.phases
        },
        "biases": stats.biases,
        "interface_area_mesh": area,
        "interface_area_mc": mc,
        "interface_area_ratio": {p: area[p] / mc[p] for p in mc},
        "interface_area_image_metrics": img_area,
        "interface_area_ratio_image_metrics": {p: area[p] / img_area[p] for p in img_area},
        "area_by_tag": rep.area_by_tag,
        "connectivity": conn.to_dict(),
        "connectivity_option": opts.connectivity,
        "options_used": stats.options,
        "rejected_settings": stats.rejected,
        "percolation_differences": stats.percolation_differences,
        "load_average_before": load_before,
        "peak_rss_mb_after_meshing": rss_meshing,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_average_after": os.getloadavg(),
    }
    return tm, res


def voxel_tau_x(lab: np.ndarray) -> dict:
    """Pore tau_x of the voxels by finite volumes, face-connected (6) and with diagonals (26)."""
    from tomofem.homogenization.voxel_fvm import tortuosity_voxel

    out = {}
    for conn in (6, 26):
        r = tortuosity_voxel(lab == 0, 0, connectivity=conn)
        out[str(conn)] = {"tau": r.tau, "iterations": r.iterations, "unknowns": r.unknowns}
    return out


def tau_x(tm) -> dict:
    """Pore-phase tortuosity along x by P1 FEM (CG + GAMG) on the mesh."""
    from tomofem import tags
    from tomofem._fenics import MPI
    from tomofem.homogenization.tortuosity import tortuosity_fem
    from tomofem.meshing import to_dolfinx

    dm = to_dolfinx(tm, MPI.COMM_WORLD)
    t0 = time.perf_counter()
    r = tortuosity_fem(dm.mesh, dm.cell_tags, {int(tags.Phase.PORE): 1.0}, axis=0, check=False)
    return {
        "tau": r.tau,
        "k_eff": r.k_eff,
        "porosity": r.porosity,
        "connected_porosity": r.connected_porosity,
        "iterations": r.iterations,
        "unknowns": r.unknowns,
        "flux_in": r.flux_in,
        "flux_out": r.flux_out,
        "solve_s": time.perf_counter() - t0,
        "solver": "CG + GAMG (tomofem.solvers.presets.conduction_cg_gamg)",
    }


def render(tm, path: Path) -> None:
    """Off-screen picture of a three-phase mesh.

    Left: cells coloured by phase with one octant cut away (box faces and the
    inside); right: the solid phases alone (pore cells hidden), showing the
    NMC particles and the CBD around them in 3D.
    """
    import pyvista as pv

    pv.OFF_SCREEN = True
    n = tm.num_cells
    cells = np.hstack([np.full((n, 1), 4), tm.cells]).ravel()
    grid = pv.UnstructuredGrid(cells, np.full(n, pv.CellType.TETRA, dtype=np.uint8), tm.points)
    grid.cell_data["phase"] = tm.cell_tags
    centre = 0.5 * (tm.box[0] + tm.box[1])
    cen = tm.points[tm.cells].mean(axis=1)
    views = [
        grid.extract_cells(np.flatnonzero(~np.all(cen > centre, axis=1))).extract_surface(),
        grid.extract_cells(np.flatnonzero(tm.cell_tags >= 2)).extract_surface(),
    ]
    colours = ["#3b7dd8", "#9a9a9a", "#e0a030"]
    pl = pv.Plotter(off_screen=True, window_size=(2000, 1000), shape=(1, 2))
    titles = ["pore (blue) / NMC (grey) / CBD (orange), octant removed", "NMC + CBD (pore hidden)"]
    for i, (surf, title) in enumerate(zip(views, titles, strict=True)):
        pl.subplot(0, i)
        pl.add_mesh(
            surf,
            scalars="phase",
            clim=[0.5, 3.5],
            cmap=colours,
            n_colors=3,
            show_edges=True,
            edge_color="#303030",
            line_width=0.2,
            show_scalar_bar=False,
        )
        pl.add_text(title, font_size=12)
        pl.camera_position = "iso"
    with tempfile.NamedTemporaryFile(suffix=".png", dir=path.parent, delete=False) as f:
        tmp = Path(f.name)
    pl.screenshot(str(tmp))
    pl.close()
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="crop100-2,crop100-3")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--tau", action="store_true", help="pore tau_x, mesh (P1) and voxels (FV)")
    ap.add_argument("--png", action="store_true", help="render crop100-3")
    ap.add_argument("--options", default="", help="LevelSetOptions overrides, e.g. sigma=1.0")
    ap.add_argument("--faithful", action="store_true", help="use LevelSetOptions.faithful()")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    path = DATA / "electrode.tiff"
    if not path.exists():
        sys.exit(f"real electrode not found at {path}; set TOMOFEM_SHARED_DATA")
    labels = load_electrode(path).data
    kw = {}
    for item in filter(None, args.options.split(",")):
        k, v = item.split("=")
        kind = type(getattr(LevelSetOptions(), k))
        kw[k] = (v == "True") if kind is bool else kind(v)
    opts = LevelSetOptions.faithful(**kw) if args.faithful else LevelSetOptions(**kw)
    results = []
    for case in args.cases.split(","):
        tm, res = run_case(labels, case, opts, args.repeats)
        if args.tau:
            res["tau_x_pore"] = tau_x(tm)
            res["tau_x_pore_voxel"] = voxel_tau_x(crop(labels, case))
        if args.png and case.endswith("-3"):
            png = REPO / "bench" / "results" / f"meshing_real_{case}.png"
            render(tm, png)
            res["png"] = str(png.relative_to(REPO))
        print(json.dumps({k: v for k, v in res.items() if k != "dihedral_histogram"}, default=str))
        results.append(res)
    name = f"meshing_real_{args.out}.json" if args.out else "meshing_real.json"
    out = REPO / "bench" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"results": results}, indent=1, default=str))
    tmp.replace(out)


if __name__ == "__main__":
    main()
