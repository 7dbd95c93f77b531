"""Pictures of flow results: the pore network, its drainage curve, a velocity slice.

Matplotlib only (no OpenGL), written through :func:`tomofem.viz.plots._save`
so that a run folder never holds a half-written PNG. Lengths are drawn in µm,
pressures in kPa; every panel says what its colours and sizes mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tomofem.viz.plots import _figure, _save, nice_length

UM = 1e-6


def plot_network(
    coords: np.ndarray,
    conns: np.ndarray,
    pore_diameter: np.ndarray,
    throat_diameter: np.ndarray,
    path: str | Path,
    *,
    internal: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Pores and throats in 3D (left) and their size distributions (right).

    Parameters
    ----------
    coords
        Pore centres [m], shape ``(n, 3)``.
    conns
        Pore pairs of the throats, shape ``(m, 2)``.
    pore_diameter, throat_diameter
        Inscribed diameters [m].
    internal
        Boolean per pore: drawn and counted (boundary pores of the padding are not).
    """
    from mpl_toolkits.mplot3d.art3d import Line3DCollection

    coords = np.asarray(coords, dtype=float) / UM
    conns = np.asarray(conns, dtype=np.int64)
    dp = np.asarray(pore_diameter, dtype=float) / UM
    dt = np.asarray(throat_diameter, dtype=float) / UM
    keep = np.ones(len(coords), dtype=bool) if internal is None else np.asarray(internal, bool)
    tkeep = keep[conns].all(axis=1)
    fig = _figure(10.0, 4.6)
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    segs = coords[conns[tkeep]]
    width = 0.4 + 2.6 * dt[tkeep] / max(float(dt[tkeep].max(initial=0.0)), 1e-30)
    ax.add_collection3d(Line3DCollection(segs, colors="0.35", linewidths=width, alpha=0.6))
    c = coords[keep]
    size = 4 + 60 * (dp[keep] / max(float(dp[keep].max(initial=0.0)), 1e-30)) ** 2
    sc = ax.scatter(c[:, 0], c[:, 1], c[:, 2], s=size, c=dp[keep], cmap="viridis", depthshade=False)
    cb = fig.colorbar(sc, ax=ax, shrink=0.6, pad=0.12)
    cb.set_label("pore diameter [µm]")
    ax.set_xlabel("x [µm]")
    ax.set_ylabel("y [µm]")
    ax.set_zlabel("z [µm]")
    ax.set_title(
        f"{int(keep.sum())} pores, {int(tkeep.sum())} throats between them\n"
        "(marker size and colour: pore diameter; line width: throat diameter)",
        fontsize=8,
    )
    h = fig.add_subplot(1, 2, 2)
    hi = max(float(dp[keep].max(initial=0.0)), float(dt.max(initial=0.0)))
    bins = np.linspace(0.0, hi * 1.02 if hi > 0 else 1.0, 25)
    h.hist(dp[keep], bins=bins, alpha=0.6, label=f"pores (n = {int(keep.sum())})")
    to_bnd = len(dt) - int(tkeep.sum())
    h.hist(dt, bins=bins, alpha=0.6, label=f"throats (n = {len(dt)}, {to_bnd} to face pores)")
    h.set_xlabel("inscribed diameter [µm]")
    h.set_ylabel("count")
    h.legend(frameon=False)
    h.set_title("size distributions (SNOW2 inscribed spheres and discs)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_drainage(
    pressure: Sequence[float],
    saturation: Sequence[float],
    path: str | Path,
    *,
    breakthrough: float | None = None,
    title: str = "",
) -> Path:
    """Capillary pressure [kPa, log axis] against non-wetting saturation."""
    fig = _figure(5.5, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    p = np.asarray(pressure, dtype=float) / 1e3
    ax.semilogy(np.asarray(saturation, dtype=float), p, "o-", ms=3, label="network drainage")
    if breakthrough is not None and np.isfinite(breakthrough):
        ax.axhline(
            breakthrough / 1e3, color="C3", ls="--", lw=1,
            label=f"breakthrough {breakthrough / 1e3:.3g} kPa",
        )  # fmt: skip
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("non-wetting saturation [-]")
    ax.set_ylabel("capillary pressure [kPa]")
    ax.legend(frameon=False, loc="lower right")
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_velocity_slice(
    speed: np.ndarray,
    inplane: tuple[np.ndarray, np.ndarray] | None,
    extent: tuple[float, float, float, float],
    path: str | Path,
    *,
    labels: tuple[str, str] = ("x", "z"),
    unit: str = "µm",
    title: str = "",
    colour_label: str = "|u| / <u> [-]",
) -> Path:
    """Speed on a plane (NaN outside the fluid) with in-plane streamlines and a scale bar.

    Parameters
    ----------
    speed
        ``(n_b, n_a)`` array on a regular grid (rows: second axis).
    inplane
        The two in-plane velocity components on the same grid, or None.
    extent
        ``(a0, a1, b0, b1)`` in ``unit``.
    """
    import matplotlib.colors as mcolors

    fig = _figure(5.8, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    sp = np.ma.masked_invalid(speed)
    pos = sp.compressed()
    pos = pos[pos > 0]
    norm = None
    if pos.size and pos.max() / max(np.percentile(pos, 5), 1e-300) > 100:
        norm = mcolors.LogNorm(vmin=max(np.percentile(pos, 5), 1e-300), vmax=pos.max())
    cmap = mcolors.ListedColormap(["0.8"])
    ax.imshow(
        np.where(np.isnan(speed), 1.0, np.nan), extent=extent, origin="lower", cmap=cmap,
        interpolation="nearest",
    )  # fmt: skip
    im = ax.imshow(sp, extent=extent, origin="lower", cmap="magma", norm=norm)
    cb = fig.colorbar(im, ax=ax, shrink=0.85)
    cb.set_label(colour_label)
    if inplane is not None:
        a = np.linspace(extent[0], extent[1], speed.shape[1])
        b = np.linspace(extent[2], extent[3], speed.shape[0])
        ua, ub = (np.nan_to_num(c) for c in inplane)
        if np.any(ua) or np.any(ub):
            ax.streamplot(a, b, ua, ub, color="w", linewidth=0.5, density=1.2, arrowsize=0.6)
    span = extent[1] - extent[0]
    bar = nice_length(span)
    x0, y0 = extent[0] + 0.05 * span, extent[2] + 0.05 * (extent[3] - extent[2])
    import matplotlib.patheffects as pe

    halo = [pe.withStroke(linewidth=2.5, foreground="k")]
    ax.plot([x0, x0 + bar], [y0, y0], color="w", lw=3, solid_capstyle="butt", path_effects=halo)
    ax.annotate(
        f"{bar:g} {unit}", (x0 + bar / 2, y0), xytext=(0, 6), textcoords="offset points",
        color="w", ha="center", va="bottom", fontsize=8,
        bbox={"facecolor": "k", "alpha": 0.55, "pad": 1.5, "linewidth": 0},
    )  # fmt: skip
    ax.set_xlabel(f"{labels[0]} [{unit}]")
    ax.set_ylabel(f"{labels[1]} [{unit}]")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_title(title or "velocity on the mid-plane (grey: solid)", fontsize=9)
    return _save(fig, path)
