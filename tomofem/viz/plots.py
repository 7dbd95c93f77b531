"""Pictures of a run: matplotlib plots and pyvista off-screen renders, written as PNG.

Every function takes plain numbers or arrays (no solver objects), writes one
PNG atomically and returns its path, so a notebook, the pipeline and the demo
share them. Matplotlib is used through ``matplotlib.figure.Figure`` (no pyplot
state, no backend switch); pyvista is imported only by the render functions.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tomofem.io.atomic import write_bytes

log = logging.getLogger(__name__)

PHASE_COLOURS = {1: "#4c72b0", 2: "#c44e52", 3: "#55a868"}  # pore, active, CBD
PHASE_LABELS = {1: "pore", 2: "active", 3: "CBD"}


def _figure(width: float = 5.5, height: float = 4.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=120, layout="constrained")


def _save(fig: Any, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return write_bytes(path, buf.getvalue())


def fit_slope(h: Sequence[float], err: Sequence[float]) -> float:
    """Least-squares slope of ``log err`` against ``log h`` (the observed order).

    Non-positive errors are left out (an exact result has no order); fewer
    than two usable points give NaN.
    """
    h_arr, e_arr = np.asarray(h, float), np.asarray(err, float)
    ok = (h_arr > 0) & (e_arr > 0) & np.isfinite(e_arr)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(h_arr[ok]), np.log(e_arr[ok]), 1)[0])


def plot_convergence(
    h: Mapping[str, Sequence[float]] | Sequence[float],
    errors: Mapping[str, Sequence[float]],
    path: str | Path,
    xlabel: str = "mesh size h [voxels]",
    ylabel: str = "relative error [-]",
    title: str = "",
) -> tuple[Path, dict[str, float]]:
    """Log-log error against resolution, one line per method, with fitted slopes.

    Parameters
    ----------
    h
        Resolutions: one sequence shared by all methods, or one per method.
    errors
        ``{method: errors}``; the legend shows each fitted slope.

    Returns
    -------
    path, slopes
        The PNG and ``{method: fitted slope}``.
    """
    fig = _figure()
    ax = fig.add_subplot()
    slopes = {}
    for name, err in errors.items():
        hh = h[name] if isinstance(h, Mapping) else h
        slope = fit_slope(hh, err)
        slopes[name] = slope
        ax.loglog(hh, err, "o-", label=f"{name} (slope {slope:.2f})")
        if np.isfinite(slope):
            hh_arr = np.asarray(hh, float)
            c = np.exp(np.mean(np.log(np.asarray(err, float)) - slope * np.log(hh_arr)))
            ax.loglog(hh_arr, c * hh_arr**slope, ":", color="grey", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _save(fig, path), slopes


def plot_voltage(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    xlabel: str = "capacity [mAh]",
    cutoff: float | None = None,
    title: str = "",
) -> Path:
    """Voltage curves: ``{label: (x, voltage [V])}`` with an optional cut-off line."""
    fig = _figure()
    ax = fig.add_subplot()
    for label, (x, v) in curves.items():
        ax.plot(x, v, "-", marker=".", ms=3, label=label)
    if cutoff is not None:
        ax.axhline(cutoff, color="grey", ls="--", lw=0.8, label=f"cut-off {cutoff:g} V")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("voltage [V vs Li/Li+]")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_rate_capability(
    c_rates: Sequence[float], capacities: Sequence[float], path: str | Path, unit: str = "mAh"
) -> Path:
    """Discharged capacity against C-rate (log x axis)."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.semilogx(c_rates, capacities, "o-")
    ax.set_xlabel("C-rate [1/h]")
    ax.set_ylabel(f"discharged capacity [{unit}]")
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def plot_rve(
    sizes: Sequence[float],
    values: Mapping[str, Sequence[Sequence[float]]],
    path: str | Path,
    ylabel: str = "tortuosity factor [-]",
    xlabel: str = "sub-volume edge [voxels]",
) -> Path:
    """RVE study: mean and spread over samples at each size, one series per quantity.

    ``values[name][i]`` holds the samples at ``sizes[i]`` (e.g. one series
    per boundary condition, whose spread is the BC sensitivity).
    """
    fig = _figure()
    ax = fig.add_subplot()
    x = np.asarray(sizes, float)
    for name, samples in values.items():
        mean = np.array([np.mean(s) for s in samples])
        lo = np.array([np.min(s) for s in samples])
        hi = np.array([np.max(s) for s in samples])
        ax.plot(x, mean, "o-", label=name)
        ax.fill_between(x, lo, hi, alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_tortuosity(
    results: Mapping[str, Mapping[str, float]], path: str | Path, title: str = ""
) -> Path:
    """Bar chart of tau per axis for each method: ``{method: {"x": tau, ...}}``.

    Infinite values (a non-percolating direction) are drawn as a hatched
    bar at the top of the axis and labelled "inf", never as a number.
    """
    fig = _figure()
    ax = fig.add_subplot()
    methods = list(results)
    axes = sorted({a for r in results.values() for a in r})
    finite = [v for r in results.values() for v in r.values() if np.isfinite(v)]
    top = 1.15 * max(finite) if finite else 1.0
    width = 0.8 / max(len(methods), 1)
    for i, m in enumerate(methods):
        for j, a in enumerate(axes):
            v = results[m].get(a, np.nan)
            x = j + (i - (len(methods) - 1) / 2) * width
            if np.isfinite(v):
                ax.bar(x, v, width, color=f"C{i}", label=m if j == 0 else None)
                ax.text(x, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
            else:
                ax.bar(x, top, width, color="none", edgecolor=f"C{i}", hatch="//")
                ax.text(x, top, "inf", ha="center", va="bottom", fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(axes)), [f"τ_{a}" for a in axes])
    ax.set_ylabel("tortuosity factor [-]")
    if title:
        ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def plot_slices(
    images: Mapping[str, np.ndarray], path: str | Path, axis: int = 2, index: int | None = None
) -> Path:
    """Middle slices of several 3D images side by side (grey tomogram, labels, truth)."""
    fig = _figure(3.2 * len(images), 3.4)
    for k, (name, im) in enumerate(images.items()):
        ax = fig.add_subplot(1, len(images), k + 1)
        i = im.shape[axis] // 2 if index is None else index
        sl = np.take(im, i, axis=axis)
        discrete = np.issubdtype(im.dtype, np.integer) or im.dtype == bool
        ax.imshow(sl.T, origin="lower", cmap="viridis" if discrete else "gray")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)


def plot_series(
    x: Sequence[float],
    ys: Mapping[str, Sequence[float]],
    path: str | Path,
    xlabel: str,
    ylabel: str,
    logy: bool = False,
) -> Path:
    """Several series against one x (e.g. Newton iterations and step size against time)."""
    fig = _figure()
    ax = fig.add_subplot()
    for name, y in ys.items():
        (ax.semilogy if logy else ax.plot)(x, y, ".-", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, path)


# --------------------------------------------------------------------------- pyvista


def _pyvista() -> Any:
    import pyvista as pv
    from vtkmodules.vtkCommonCore import vtkLogger

    # Headless: VTK tries X first and logs "bad X server connection" before it
    # falls back to EGL, which renders fine; keep its errors, drop that warning.
    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)
    return pv


def _unstructured(points: np.ndarray, cells: np.ndarray) -> Any:
    pv = _pyvista()
    n = len(cells)
    conn = np.hstack([np.full((n, 1), 4, dtype=np.int64), np.asarray(cells, np.int64)]).ravel()
    types = np.full(n, 10, dtype=np.uint8)  # VTK_TETRA
    return pv.UnstructuredGrid(conn, types, np.asarray(points, float))


def _screenshot(plotter: Any, path: str | Path) -> Path:
    from PIL import Image

    img = plotter.screenshot(return_img=True)
    plotter.close()
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return write_bytes(path, buf.getvalue())


def render_mesh(
    points: np.ndarray,
    cells: np.ndarray,
    cell_tags: np.ndarray,
    path: str | Path,
    clip_phase: int | None = 1,
    window: tuple[int, int] = (900, 700),
    title: str = "",
) -> Path:
    """Off-screen render of a tagged tetrahedral mesh, coloured by phase, edges shown.

    Parameters
    ----------
    points, cells, cell_tags
        The mesh (as in :class:`tomofem.meshing.TetMesh`).
    clip_phase
        Phase left out of the picture (the pore, by default) so the solid
        microstructure is visible; None shows every phase.
    """
    pv = _pyvista()
    grid = _unstructured(points, cells)
    grid.cell_data["phase"] = np.asarray(cell_tags)
    show = (
        grid if clip_phase is None else grid.extract_cells(np.flatnonzero(cell_tags != clip_phase))
    )
    p = pv.Plotter(off_screen=True, window_size=window)
    p.set_background("white")
    phases = sorted(int(t) for t in np.unique(cell_tags) if t != clip_phase)
    for ph in phases:
        part = show.extract_cells(np.flatnonzero(show.cell_data["phase"] == ph))
        p.add_mesh(
            part.extract_surface(algorithm=None),
            color=PHASE_COLOURS.get(ph, "#8172b3"),
            show_edges=True,
            edge_color="#303030",
            line_width=0.3,
            label=PHASE_LABELS.get(ph, f"phase {ph}"),
        )
    p.add_mesh(grid.outline(), color="black")
    p.add_legend(bcolor="white", size=(0.18, 0.12))
    if title:
        p.add_text(title, font_size=10, color="black")
    p.camera_position = "iso"
    p.camera.zoom(1.1)
    return _screenshot(p, path)


def render_voxels(
    labels: np.ndarray,
    path: str | Path,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    hide: int | None = 0,
    window: tuple[int, int] = (900, 700),
    title: str = "",
) -> Path:
    """Off-screen render of a label image as voxels (label ``hide`` left out)."""
    pv = _pyvista()
    grid = pv.ImageData(dimensions=np.array(labels.shape) + 1, spacing=tuple(spacing))
    grid.cell_data["label"] = np.asarray(labels).ravel(order="F")
    show = (
        grid.threshold(value=(hide + 0.5, labels.max() + 0.5), scalars="label")
        if (hide is not None)
        else grid
    )
    p = pv.Plotter(off_screen=True, window_size=window)
    p.set_background("white")
    p.add_mesh(show, scalars="label", cmap="Set1", show_scalar_bar=False)
    p.add_mesh(grid.outline(), color="black")
    if title:
        p.add_text(title, font_size=10, color="black")
    p.camera_position = "iso"
    return _screenshot(p, path)
