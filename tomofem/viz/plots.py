"""Pictures of a run: matplotlib plots and pyvista off-screen renders, written as PNG.

Every function takes plain numbers or arrays (no solver objects), writes one
PNG atomically and returns its path, so a notebook, the pipeline and the demo
share them. Matplotlib is used through ``matplotlib.figure.Figure`` (no pyplot
state, no backend switch); pyvista is imported only by the render functions.
"""

from __future__ import annotations

import io
import logging
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tomofem.io.atomic import write_bytes

log = logging.getLogger(__name__)

PHASE_COLOURS = {1: "#4c72b0", 2: "#c44e52", 3: "#55a868"}  # pore, active, CBD
PHASE_LABELS = {1: "pore", 2: "active", 3: "CBD"}
#: Label images at most this many distinct values are drawn as phases (else as grey values).
MAX_PHASES_DRAWN = 8


def nice_length(span: float, fraction: float = 0.25) -> float:
    """Return a 1-2-5 length of about ``fraction`` of ``span`` (the length of a scale bar)."""
    target = max(float(span) * fraction, np.finfo(float).tiny)
    power = 10.0 ** np.floor(np.log10(target))
    for m in (5.0, 2.0, 1.0):
        if m * power <= target * 1.0001:
            return float(m * power)
    return float(power)


def length_unit(spacing: Sequence[float] | float | None, unit: str = "µm") -> tuple[tuple, str]:
    """Voxel size per axis and the unit to label lengths with.

    A missing voxel size, or one of exactly 1 on every axis (the default
    when the image did not say), is taken as unknown: lengths are then
    given in voxels (spacing 1) and the unit says so.
    """
    if spacing is None:
        return (1.0, 1.0, 1.0), "voxels"
    h = tuple(float(v) for v in np.broadcast_to(np.asarray(spacing, float), (3,)))
    if all(v == 1.0 for v in h):
        return (1.0, 1.0, 1.0), "voxels"
    return h, unit


def _phase_colour(label: int) -> str:
    """Colour of label index ``label`` (0 = pore), the same as in the mesh render."""
    return PHASE_COLOURS.get(label + 1, f"C{(label + 4) % 10}")


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
    stops: Mapping[str, str] | None = None,
) -> Path:
    """Voltage curves: ``{label: (x, voltage [V])}`` with an optional cut-off line.

    Parameters
    ----------
    curves
        One curve per label; put the C-rate into the label (``"1C discharge"``).
    cutoff
        Cut-off voltage [V], drawn as a dashed line (kept in view even when no
        curve reaches it, so an early stop is visible as a gap).
    stops
        ``{label: reason}`` for curves that stopped before the cut-off: their
        last point is marked and annotated with the reason.
    """
    fig = _figure(6.0, 4.4)
    ax = fig.add_subplot()
    for k, (label, (x, v)) in enumerate(curves.items()):
        ax.plot(x, v, "-", marker=".", ms=3, color=f"C{k}", label=label)
        reason = (stops or {}).get(label)
        if reason and len(x):
            ax.plot(x[-1], v[-1], "X", color=f"C{k}", ms=8, mec="black", mew=0.6)
            ax.annotate(
                "\n".join(textwrap.wrap(f"stopped early: {reason}", 34)),
                (x[-1], v[-1]),
                xytext=(-8, 28),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=8,
                arrowprops={"arrowstyle": "->", "lw": 0.8},
                bbox={"boxstyle": "round", "fc": "white", "ec": "0.6", "alpha": 0.9},
            )
    if cutoff is not None:
        ax.axhline(cutoff, color="black", ls="--", lw=1.0, label=f"cut-off voltage {cutoff:g} V")
        lo, hi = ax.get_ylim()
        pad = 0.05 * (hi - lo)
        ax.set_ylim(min(lo, cutoff - pad), max(hi, cutoff + pad))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("voltage [V vs Li/Li+]")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right")
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


def _error_pair(err: float | Sequence[float] | None) -> tuple[float, float]:
    """``(minus, plus)`` of a symmetric or asymmetric error; (0, 0) when unknown."""
    if err is None:
        return 0.0, 0.0
    arr = np.atleast_1d(np.asarray(err, float))
    lo, hi = (arr[0], arr[0]) if arr.size == 1 else (arr[0], arr[1])
    ok = np.isfinite([lo, hi])
    return (float(abs(lo)) if ok[0] else 0.0), (float(abs(hi)) if ok[1] else 0.0)


def plot_tortuosity(
    results: Mapping[str, Mapping[str, float]],
    path: str | Path,
    title: str = "",
    bounds: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
    errors: Mapping[str, Mapping[str, float | Sequence[float]]] | None = None,
    recommended: Mapping[str, float] | None = None,
    error_label: str = "error estimate",
    recommended_errors: Mapping[str, float | Sequence[float]] | None = None,
) -> Path:
    """Bar chart of tau per axis for each method: ``{method: {"x": tau, ...}}``.

    The legend sits above the axes, so it never covers a bar.

    Parameters
    ----------
    results
        Tortuosity factor per method and axis. Infinite values (the phase does
        not percolate along that axis) are drawn as an empty hatched bar
        marked "not percolating", never as a number.
    bounds
        ``{name: {axis: (lower, upper)}}`` bounds on tau (e.g. Wiener, from
        the bounds on k_eff: ``tau = eps / k_eff``), drawn as a line per axis;
        an infinite upper bound (an insulating phase) is said in the legend.
    errors
        ``{method: {axis: error}}`` error bars in tau units (symmetric, or
        ``(minus, plus)``); methods or axes without one get none.
    recommended
        ``{axis: tau}``: the value to use, marked with a star.
    error_label
        Legend entry of the error bars (what they hold).
    recommended_errors
        ``{axis: error}``: error bars on the recommended values (tau units,
        symmetric or ``(minus, plus)``).
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig = _figure(6.0, 4.8)
    ax = fig.add_subplot()
    methods = list(results)
    axes = sorted({a for r in results.values() for a in r})
    finite = [v for r in results.values() for v in r.values() if np.isfinite(v)]
    for m, errs in (errors or {}).items():
        for a, e in errs.items():
            v = results.get(m, {}).get(a, np.nan)
            if np.isfinite(v):
                finite.append(v + _error_pair(e)[1])
    finite += [
        v + _error_pair((recommended_errors or {}).get(a))[1]
        for a, v in (recommended or {}).items()
        if np.isfinite(v)
    ]
    top = 1.18 * max(finite) if finite else 2.0
    width = 0.8 / max(len(methods), 1)
    handles: list[Any] = [Patch(color=f"C{i}", label=m) for i, m in enumerate(methods)]
    has_err = False
    for i, m in enumerate(methods):
        for j, a in enumerate(axes):
            v = results[m].get(a, np.nan)
            x = j + (i - (len(methods) - 1) / 2) * width
            if np.isfinite(v):
                ax.bar(x, v, width, color=f"C{i}")
                lo, hi = _error_pair((errors or {}).get(m, {}).get(a))
                if lo or hi:
                    has_err = True
                    ax.errorbar(x, v, yerr=[[lo], [hi]], fmt="none", ecolor="black", capsize=4)
                ax.text(x, v + hi, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
            elif not np.isnan(v):
                ax.bar(x, top, width, color="none", edgecolor=f"C{i}", hatch="//")
                ax.text(
                    x, top / 2, "not percolating (τ = ∞)", ha="center", va="center",
                    rotation=90, fontsize=8, bbox={"fc": "white", "ec": "none", "alpha": 0.8},
                )  # fmt: skip
    if has_err:
        handles.append(
            Line2D([], [], color="black", marker="_", ms=8, ls="-", lw=1, label=error_label)
        )
    styles = [("black", "--"), ("#8c564b", ":"), ("#7f7f7f", "-.")]
    for k, (name, per_axis) in enumerate((bounds or {}).items()):
        colour, ls = styles[k % len(styles)]
        open_top = False
        for j, a in enumerate(axes):
            lo, hi = per_axis.get(a, (np.nan, np.nan))
            for y in (lo, hi):
                if np.isfinite(y) and y <= top:
                    ax.hlines(y, j - 0.45, j + 0.45, colors=colour, linestyles=ls, lw=1.2)
            open_top |= not np.isfinite(hi)
        label = f"{name} bounds" + (" (upper: ∞, an insulating phase)" if open_top else "")
        handles.append(Line2D([], [], color=colour, ls=ls, lw=1.2, label=label))
    has_rec_err = False
    if recommended:
        for j, a in enumerate(axes):
            v = recommended.get(a)
            if v is not None and np.isfinite(v):
                lo, hi = _error_pair((recommended_errors or {}).get(a))
                if lo or hi:
                    has_rec_err = True
                    ax.errorbar(j, v, yerr=[[lo], [hi]], fmt="none", ecolor="black", capsize=6,
                                lw=1.5, zorder=4)  # fmt: skip
                ax.plot(j, v, "*", color="gold", mec="black", ms=13, zorder=5)
        handles.append(
            Line2D([], [], color="gold", mec="black", marker="*", ms=11, ls="", label="recommended")
        )
        if has_rec_err and not has_err:
            handles.append(
                Line2D([], [], color="black", marker="_", ms=8, ls="-", lw=1, label=error_label)
            )
    ticks = []
    for a in axes:  # the recommended value (★, and its error) under each axis' name
        v = (recommended or {}).get(a)
        lo, hi = _error_pair((recommended_errors or {}).get(a))
        if v is None:
            ticks.append(f"τ_{a}")
        elif not np.isfinite(v):
            ticks.append(f"τ_{a}\n★ ∞")
        else:
            err = f" ± {hi:.2g}" if hi and lo == hi else (f" +{hi:.2g}/-{lo:.2g}" if hi else "")
            ticks.append(f"τ_{a}\n★ {v:.3f}{err}")
    ax.set_xticks(range(len(axes)), ticks)
    ax.set_xlim(-0.6, len(axes) - 0.4)
    ax.set_ylim(0.0, top * 1.02)
    ax.set_ylabel("tortuosity factor τ [-]")
    ax.grid(True, axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.01), ncol=2,
              fontsize=8, frameon=False)  # fmt: skip
    return _save(fig, path)


def _is_label_image(im: np.ndarray) -> bool:
    """Integer or boolean with few distinct values: phases, not grey values."""
    if im.dtype == bool:
        return True
    return bool(
        np.issubdtype(im.dtype, np.integer)
        and im.min() >= 0
        and len(np.unique(im)) <= MAX_PHASES_DRAWN
    )


def plot_slices(
    images: Mapping[str, np.ndarray],
    path: str | Path,
    axis: int = 2,
    index: int | None = None,
    spacing: Sequence[float] | float | None = None,
    phase_names: Sequence[str] | None = None,
    label_panels: Sequence[str] | None = None,
    unit: str = "µm",
) -> Path:
    """One slice of several 3D images side by side (grey tomogram, labels, truth).

    Parameters
    ----------
    images
        ``{panel title: 3D array}``, all of one shape (array axes x, y, z).
    axis
        The axis normal to the slice (2: an x-y slice).
    index
        Slice index along ``axis`` (the middle one by default); it is written
        in the figure's title.
    spacing
        Voxel size per axis in ``unit``, for axes in physical lengths and the
        scale bar. None, or 1 on every axis, counts as unknown: lengths are
        then in voxels and the axes say so.
    phase_names
        Name of label 0, 1, ... (default pore, active, CBD) for the legend.
    label_panels
        Panels that hold label images (drawn in the phase colours of the
        mesh render, with a legend); by default the integer or boolean
        images with at most :data:`MAX_PHASES_DRAWN` values. The others are
        grey values with a colour bar.
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    h, unit = length_unit(spacing, unit)
    names = list(phase_names) if phase_names is not None else ["pore", "active", "CBD"]
    first = next(iter(images.values()))
    n = first.shape[axis]
    i = n // 2 if index is None else int(index)
    a, b = (d for d in range(3) if d != axis)
    extent = (0.0, first.shape[a] * h[a], 0.0, first.shape[b] * h[b])
    bar = nice_length(extent[1])
    fig = _figure(3.3 * len(images), 3.9)
    seen: set[int] = set()
    for k, (name, im) in enumerate(images.items()):
        ax = fig.add_subplot(1, len(images), k + 1)
        sl = np.take(im, i, axis=axis)
        labels = name in label_panels if label_panels is not None else _is_label_image(im)
        if labels:
            top = int(max(np.max(im), 1))
            cmap = ListedColormap([_phase_colour(v) for v in range(top + 1)])
            norm = BoundaryNorm(np.arange(-0.5, top + 1.5), cmap.N)
            ax.imshow(sl.T, origin="lower", extent=extent, cmap=cmap, norm=norm,
                      interpolation="nearest")  # fmt: skip
            seen.update(int(v) for v in np.unique(im))
        else:
            art = ax.imshow(sl.T, origin="lower", extent=extent, cmap="gray",
                            interpolation="nearest")  # fmt: skip
            bar_ = fig.colorbar(art, ax=ax, shrink=0.75, pad=0.02)
            bar_.set_label("grey value [-]", fontsize=8)
            bar_.ax.tick_params(labelsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(f"{'xyz'[a]} [{unit}]", fontsize=8)
        if k == 0:
            ax.set_ylabel(f"{'xyz'[b]} [{unit}]", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.add_artist(
            AnchoredSizeBar(
                ax.transData, bar, f"{bar:g} {unit}", "lower right", pad=0.3, sep=3,
                color="black", frameon=True, size_vertical=extent[3] / 80,
                fontproperties={"size": 7},
            )
        )  # fmt: skip
    c = "xyz"[axis]
    head = f"{'xyz'[a]}-{'xyz'[b]} slice at {c} index {i} of 0-{n - 1}"
    if unit == "voxels":
        head += "; voxel size unknown: lengths in voxels"
    else:
        head += f" ({c}\u00a0=\u00a0{(i + 0.5) * h[axis]:.4g}\u00a0{unit}, voxel centre)"
    fig.suptitle(textwrap.fill(head, width=int(40 * len(images))), fontsize=9)
    if seen:
        handles = [
            Patch(color=_phase_colour(v), label=names[v] if v < len(names) else f"label {v}")
            for v in sorted(seen)
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8,
                   frameon=False)  # fmt: skip
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


def plot_steps(
    time: Sequence[float],
    dt: Sequence[float],
    newton: Sequence[float],
    path: str | Path,
    title: str = "",
) -> Path:
    """Time-step size and Newton iterations per accepted step, in two panels over time.

    Parameters
    ----------
    time
        Time at the end of each step [s] (an initial state with ``dt = 0`` is left out).
    dt
        Step size [s], on a log axis (it spans decades as the controller grows it).
    newton
        Newton iterations of each step [-], on an integer axis.
    """
    from matplotlib.ticker import MaxNLocator

    t, d, it = (np.asarray(v, float) for v in (time, dt, newton))
    keep = d > 0
    fig = _figure(6.0, 4.8)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.semilogy(t[keep], d[keep], ".-", color="C0")
    top.set_ylabel("time step dt [s]")
    top.grid(True, which="both", alpha=0.3)
    bottom.plot(t[keep], it[keep], ".-", color="C1")
    bottom.set_ylabel("Newton iterations [-]")
    bottom.set_xlabel("time [s]")
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_ylim(0, max(float(it[keep].max(initial=1)), 1.0) + 1)
    bottom.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
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


def _unicode_font(text_properties: Sequence[Any]) -> None:
    """Draw VTK texts in matplotlib's DejaVu Sans, which has the glyphs VTK's own fonts lack (µ)."""
    import matplotlib

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not ttf.exists():
        return
    for prop in text_properties:
        prop.SetFontFamily(4)  # VTK_FONT_FILE
        prop.SetFontFile(str(ttf))


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
    clip_phase: int | None = None,
    window: tuple[int, int] = (900, 760),
    title: str = "",
    translucent_phase: int | None = 1,
    unit: str | None = None,
    phase_names: Mapping[int, str] | None = None,
) -> Path:
    """Off-screen render of a tagged tetrahedral mesh, coloured by phase, with axes in ``unit``.

    Parameters
    ----------
    points, cells, cell_tags
        The mesh (as in :class:`tomofem.meshing.TetMesh`).
    clip_phase
        Phase left out of the picture altogether (None: every phase is drawn).
    translucent_phase
        Phase drawn see-through and without edges (the pore, by default), so
        the solid microstructure inside stays visible while the pore space
        is still shown.
    title
        Text at the top, e.g. ``"conformal tetrahedral mesh, N cells, M vertices"``.
    unit
        Length unit of the coordinates: the box gets axes with ticks in it
        (the scale). None: no axes.
    phase_names
        Legend names per phase id (default pore / active / CBD).
    """
    grid = _unstructured(points, cells)
    tags = np.asarray(cell_tags)
    phases = sorted(int(t) for t in np.unique(tags) if t != clip_phase)
    parts = {
        ph: grid.extract_cells(np.flatnonzero(tags == ph)).extract_surface(algorithm=None)
        for ph in phases
    }
    return _render_parts(
        parts, grid.bounds, path, window, title, translucent_phase, unit, phase_names
    )


def render_surfaces(
    triangles: Mapping[int, np.ndarray],
    path: str | Path,
    window: tuple[int, int] = (900, 760),
    title: str = "",
    translucent_phase: int | None = 1,
    unit: str | None = None,
    phase_names: Mapping[int, str] | None = None,
) -> Path:
    """Off-screen render of each phase's boundary surface, as :func:`render_mesh` draws it.

    For meshes that exist only distributed: each phase's surface (its
    interfaces and its box faces) is all the picture needs, and gathering
    those triangles costs a fraction of the cells.

    Parameters
    ----------
    triangles
        ``{phase id: (n, 3, 3) corner coordinates}`` of the phase's boundary triangles.
    path, window, title, translucent_phase, unit, phase_names
        As for :func:`render_mesh`.
    """
    pv = _pyvista()
    parts = {}
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for ph, tri in sorted(triangles.items()):
        tri = np.asarray(tri, dtype=float).reshape(-1, 3, 3)
        if not len(tri):
            continue
        faces = np.hstack([np.full((len(tri), 1), 3), np.arange(3 * len(tri)).reshape(-1, 3)])
        parts[int(ph)] = pv.PolyData(tri.reshape(-1, 3), faces.ravel()).clean()
        lo, hi = np.minimum(lo, tri.min(axis=(0, 1))), np.maximum(hi, tri.max(axis=(0, 1)))
    bounds = (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])
    return _render_parts(parts, bounds, path, window, title, translucent_phase, unit, phase_names)


def _render_parts(
    parts: Mapping[int, Any],
    bounds: Sequence[float],
    path: str | Path,
    window: tuple[int, int],
    title: str,
    translucent_phase: int | None,
    unit: str | None,
    phase_names: Mapping[int, str] | None,
) -> Path:
    """Draw per-phase surfaces, the box outline and axes; frame with title and legend."""
    pv = _pyvista()
    names = {**PHASE_LABELS, **dict(phase_names or {})}
    p = pv.Plotter(off_screen=True, window_size=window)
    p.set_background("white")
    legend: list[tuple[str, str, float]] = []
    for ph, part in sorted(parts.items()):
        colour = PHASE_COLOURS.get(ph, "#8172b3")
        see_through = ph == translucent_phase
        p.add_mesh(
            part,
            color=colour,
            opacity=0.22 if see_through else 1.0,
            show_edges=not see_through,
            edge_color="#303030",
            line_width=0.3,
        )
        name = names.get(ph, f"phase {ph}")
        legend.append(
            (f"{name} (see-through)" if see_through else name, colour, 0.4 if see_through else 1.0)
        )
    p.add_mesh(pv.Box(bounds).outline(), color="black")
    if unit is not None:
        axes = p.show_bounds(
            grid=False, location="outer", ticks="outside", color="black", font_size=11,
            xtitle=f"x [{unit}]", ytitle=f"y [{unit}]", ztitle=f"z [{unit}]",
            n_xlabels=3, n_ylabels=3, n_zlabels=3, fmt="%.0f",
        )  # fmt: skip
        axes.SetUseTextActor3D(True)  # font files work for text actors, not vector text
        axes.SetScreenSize(18.0)
        _unicode_font(
            [axes.GetTitleTextProperty(i) for i in range(3)]
            + [axes.GetLabelTextProperty(i) for i in range(3)]
        )
    p.camera_position = "iso"
    p.camera.zoom(0.88 if unit is not None else 1.1)
    return _framed(p, path, title, legend)


def _framed(
    plotter: Any, path: str | Path, title: str, legend: list[tuple[str, str, float]]
) -> Path:
    """Screenshot of ``plotter`` in a matplotlib frame with a title and a phase legend."""
    from matplotlib.patches import Patch

    img = plotter.screenshot(return_img=True)
    plotter.close()
    h, w = img.shape[:2]
    fig = _figure(w / 120, h / 120 + 0.5)
    ax = fig.add_subplot()
    ax.imshow(img, interpolation="antialiased")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    handles = [Patch(fc=c, ec="0.3", alpha=a, label=n) for n, c, a in legend]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    return _save(fig, path)


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
