"""The run folder's pictures read like a paper's figures (issue #15, items 8-12)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tomofem import pipeline
from tomofem.viz import plots


@pytest.fixture
def figures(monkeypatch):
    """Keep each matplotlib figure the plot functions save (and still write the PNG)."""
    kept = []
    save = plots._save

    def keep(fig, path):
        kept.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return kept


def _texts(fig) -> str:
    out = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    return " | ".join(out)


def _labels(n: int = 12) -> np.ndarray:
    lab = np.zeros((n, n, n), np.uint8)
    lab[:, n // 2 :, :] = 1
    lab[2:4, 2:4, :] = 2
    return lab


def test_slices_have_lengths_scale_bar_legend_and_index(tmp_path, figures):
    lab = _labels()
    grey = lab.astype(float) + 0.1
    plots.plot_slices(
        {"tomogram": grey, "segmented": lab},
        tmp_path / "s.png",
        spacing=(0.5, 0.5, 0.5),
        phase_names=["pore", "active", "CBD"],
        index=3,
    )
    fig = figures[-1]
    img_axes = [a for a in fig.axes if a.get_images()]
    assert [a.get_xlabel() for a in img_axes] == ["x [µm]", "x [µm]"]
    assert img_axes[0].get_ylabel() == "y [µm]"
    assert img_axes[0].get_xlim() == (0.0, 6.0)  # 12 voxels of 0.5 um
    text = _texts(fig).replace("\u00a0", " ")
    assert "z index 3 of 0-11" in text and "z = 1.75 µm" in text
    assert "1 µm" in text  # the scale bar
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["pore", "active", "CBD"]
    plots.plot_slices({"labels": lab}, tmp_path / "v.png")  # voxel size unknown
    fig = figures[-1]
    assert fig.axes[0].get_xlabel() == "x [voxels]"
    assert "voxel size unknown: lengths in voxels" in " ".join(_texts(fig).split())


class _Folder:
    rank = 0

    def __init__(self, path: Path):
        self.path = path

    def file(self, name: str) -> Path:
        return self.path / name


def test_label_image_input_draws_no_tomogram_panel(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(
        plots, "plot_slices", lambda ims, path, **kw: seen.update(ims=list(ims), **kw)
    )
    lab = _labels()
    volume = SimpleNamespace(data=lab * 85, label_names=None, spacing=(1.0, 1.0, 1.0))
    labels = SimpleNamespace(data=lab, label_names=("pore", "active", "cbd"), spacing=(1.0,) * 3)
    res = pipeline.PipelineResult(
        results={"segment": {"method": "labels"}},
        outputs={"volume": volume, "labels": labels, "truth": None},
    )
    assert pipeline.pictures(res, _Folder(tmp_path), ("segment",)) == ["slices.png"]
    assert seen["ims"] == ["labels"]
    res.results["segment"] = {"method": "otsu"}  # a tomogram: shown beside its labels
    pipeline.pictures(res, _Folder(tmp_path), ("segment",))
    assert seen["ims"] == ["tomogram", "segmented"]


def test_mesh_render_names_the_mesh_draws_the_pore_and_has_axes(tmp_path, figures):
    from tomofem.meshing import structured_tetmesh

    tm = structured_tetmesh(_labels(6)[:, :, :4] % 2, (0.5, 0.5, 0.5))
    title = f"conformal tetrahedral mesh: {tm.num_cells} cells, {len(tm.points)} vertices"
    plots.render_mesh(tm.points, tm.cells, tm.cell_tags, tmp_path / "m.png", title=title, unit="µm")
    fig = figures[-1]
    assert fig.get_suptitle() == title
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["pore (see-through)", "active"]
    assert (tmp_path / "m.png").stat().st_size > 10_000


def test_tortuosity_legend_above_bounds_errors_and_not_percolating(tmp_path, figures):
    plots.plot_tortuosity(
        {"FEM": {"x": math.inf, "y": 1.7}, "voxel FVM": {"x": math.inf, "y": 1.8}},
        tmp_path / "t.png",
        bounds={"Wiener": {"x": (1.0, math.inf), "y": (1.0, math.inf)}},
        recommended={"x": math.inf, "y": 1.7},
        recommended_errors={"y": 0.1},
        error_label="error estimate (discretisation + geometry)",
    )
    fig = figures[-1]
    ax = fig.axes[0]
    legend = ax.get_legend()
    names = [t.get_text() for t in legend.get_texts()]
    assert names[:2] == ["FEM", "voxel FVM"]  # not empty when the first axis is inf
    assert "Wiener bounds (upper: ∞, an insulating phase)" in names
    assert "recommended" in names and "error estimate (discretisation + geometry)" in names
    fig.canvas.draw()
    assert legend.get_window_extent().y0 >= ax.get_window_extent().y1 - 1  # above the bars
    assert _texts(fig).count("not percolating") == 2
    assert any(len(c.get_segments()) for c in ax.collections)  # bound lines and error bars


def test_voltage_shows_c_rate_cutoff_and_early_stop(tmp_path, figures):
    sim = SimpleNamespace(
        series={"voltage": [4.28, 4.0, 3.8], "capacity": [0.0, 2e-6, 6e-6]},
        one_c_current_A=3.6e-8, stop_reason="protocol complete",
        step_ends=["step 0: duration 600.0 s"],
    )  # fmt: skip
    from tomofem.config import SimulateConfig

    pipeline._voltage_picture(sim, SimulateConfig(c_rate=2.0, v_min=3.5), _Folder(tmp_path))
    fig = figures[-1]
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert names == ["2C discharge", "cut-off voltage 3.5 V"]
    assert "2C" in ax.get_title()
    assert ax.get_ylim()[0] < 3.5
    text = _texts(fig)
    assert "stopped early: duration 600.0 s (simulate.t_end)" in " ".join(text.split())
    assert ax.get_xlabel() == "depth of discharge [% of the cell capacity, 3.6e-05 mAh]"


def test_steps_in_two_panels_with_units(tmp_path, figures):
    plots.plot_steps([0, 1, 3, 7], [0, 1, 2, 4], [0, 4, 3, 3], tmp_path / "st.png")
    top, bottom = figures[-1].axes
    assert top.get_ylabel() == "time step dt [s]" and top.get_yscale() == "log"
    assert bottom.get_ylabel() == "Newton iterations [-]" and bottom.get_yscale() == "linear"
    assert bottom.get_xlabel() == "time [s]"


def _tau(axis: int, tau: float, k_eff: float):
    from tomofem.homogenization.results import TortuosityResult

    return TortuosityResult(
        method="fem-p1", axis=axis, tau=tau, k_eff=k_eff, porosity=0.44,
        connected_porosity=0.44, macmullin=1 / k_eff, flux_in=1.0, flux_out=1.0, length=1.0,
        area=1.0, unknowns=100, iterations=0, percolating=True,
        bounds={"reuss": 0.0, "voigt": 0.44, "hs_lower": None, "hs_upper": 0.3},
    )  # fmt: skip


@pytest.mark.parametrize("with_errors", [False, True])
def test_run_tortuosity_picture_with_and_without_error_fields(tmp_path, figures, with_errors):
    h = {"phase": "pore", "fem": {"x": _tau(0, 2.35, 0.187)}, "voxel": {"x": _tau(0, 2.32, 0.19)}}
    if with_errors:  # keys the homogenize stage may add
        h["tau_recommended"] = {"x": 2.3}
        h["tau_error_discretisation"] = {"x": 0.04}
        h["tau_error_geometry"] = {"x": 0.06}
    pipeline._tortuosity_picture(h, _Folder(tmp_path))
    ax = figures[-1].axes[0]
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Wiener bounds (upper: ∞, an insulating phase)" in names
    assert "Hashin-Shtrikman bounds (upper: ∞, an insulating phase)" in names
    has_bar = "error estimate (discretisation + geometry)" in names
    assert has_bar == with_errors
    star = [ln for ln in ax.lines if ln.get_marker() == "*"]
    assert star[0].get_ydata()[0] == (2.3 if with_errors else 2.35)
