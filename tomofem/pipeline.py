"""Image to answers in one go: the API behind ``tomofem pipeline`` and ``make demo``.

Each stage is a function of the previous stage's output and its own config
section, so a notebook can call any one of them; :func:`run` chains the stages
a :class:`~tomofem.config.RunConfig` asks for, times them, records their
results (with units) in a run folder and returns a :class:`PipelineResult`
with a summary table.

A stage whose library API is not available in this installation raises
:class:`StageUnavailable`; :func:`run` then records it, skips the stages that
depend on it and marks the run ``partial``: no number is ever made up.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tomofem.config import (
    HomogenizeConfig,
    ImageConfig,
    RunConfig,
    SegmentConfig,
    SimulateConfig,
)
from tomofem.errors import TomofemError

log = logging.getLogger(__name__)

AXES = {"x": 0, "y": 1, "z": 2}
PHASE_INDEX = {"pore": 0, "active": 1, "solid": 1, "cbd": 2}

#: Which earlier stages each stage needs (besides the image).
NEEDS = {
    "segment": (),
    "analyze": ("segment",),
    "mesh": ("segment",),
    "homogenize": ("segment",),
    "simulate": ("mesh",),
}


class StageUnavailable(TomofemError, NotImplementedError):
    """The library API a stage needs is not part of this installation."""


def api(module: str, name: str, stage: str) -> Any:
    """Return ``module.name`` or raise :class:`StageUnavailable` naming what is missing."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.startswith("tomofem"):
            raise StageUnavailable(
                f"stage {stage!r} needs {module}.{name}, which this tomofem does not have yet"
            ) from None
        raise
    if not hasattr(mod, name):
        raise StageUnavailable(
            f"stage {stage!r} needs {module}.{name}, which this tomofem does not have yet"
        )
    return getattr(mod, name)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Quantity:
    """One number of the summary table.

    Attributes
    ----------
    stage
        Stage that computed it.
    name
        What it is (``tau_x (FEM)``).
    value
        The number (``inf`` for a non-percolating phase's tortuosity).
    unit
        Its unit (``-`` for dimensionless).
    note
        Short context (bounds, method, interval).
    """

    stage: str
    name: str
    value: float
    unit: str
    note: str = ""


@dataclass
class StageRecord:
    """What happened to one stage: ``done``, ``skipped``, ``unavailable`` or ``failed``."""

    name: str
    status: str
    seconds: float = 0.0
    reason: str = ""


@dataclass
class PipelineResult:
    """Everything :func:`run` produced.

    Attributes
    ----------
    stages
        One record per requested stage, in order.
    quantities
        The summary table's rows.
    results
        Full per-stage results (JSON-ready mappings), as in ``results.json``.
    outputs
        In-memory products for notebooks: ``volume``, ``labels``, ``tetmesh`` ...
    status
        ``complete`` if every requested stage ran, else ``partial``.
    """

    stages: list[StageRecord] = field(default_factory=list)
    quantities: list[Quantity] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``complete`` or ``partial``."""
        return "complete" if all(s.status == "done" for s in self.stages) else "partial"

    def table(self) -> str:
        """Format the summary as a plain-text table (what the CLI prints)."""
        rows = [("stage", "quantity", "value", "unit", "note")]
        for q in self.quantities:
            v = q.value
            txt = f"{v:.5g}" if isinstance(v, float) else str(v)
            rows.append((q.stage, q.name, txt, q.unit, q.note))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = []
        for i, r in enumerate(rows):
            cells = [r[j].ljust(widths[j]) if j != 2 else r[j].rjust(widths[j]) for j in range(4)]
            lines.append("  ".join(cells) + ("  " + r[4] if r[4] else ""))
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        for s in self.stages:
            if s.status != "done":
                lines.append(f"[{s.status}] {s.name}: {s.reason}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- stages


def load_image(cfg: ImageConfig) -> tuple[Any, np.ndarray | None]:
    """Read or synthesise the image.

    Returns
    -------
    volume, truth
        A :class:`tomofem.image.Volume` (grey values for a synthetic
        tomogram or a grey file, labels for a label file) and, for synthetic
        images, the ground-truth labels (else None) so segmentation can be scored.
    """
    from tomofem.image import Volume, read_volume

    if cfg.source != "synthetic":
        vol = read_volume(cfg.source, spacing=cfg.voxel_size)
        if cfg.crop_size is not None:
            sl = tuple(slice(a, a + n) for a, n in zip(cfg.crop_start, cfg.crop_size, strict=True))
            data = vol.data[sl]
            if data.shape != tuple(cfg.crop_size):
                from tomofem.errors import ImageError

                raise ImageError(
                    f"image.crop_start {list(cfg.crop_start)} + crop_size "
                    f"{list(cfg.crop_size)} exceeds the image shape {list(vol.shape)} of "
                    f"{cfg.source}; choose a crop inside the image"
                )
            vol = Volume(np.ascontiguousarray(data), vol.spacing, vol.label_names, vol.source)
        return vol, None
    from tomofem.image import synthetic as syn

    h = cfg.voxel_size
    if cfg.kind == "spheres":
        lab = syn.random_overlapping_spheres(cfg.shape, cfg.porosity, cfg.radius, h, cfg.seed)
    elif cfg.kind == "packing":
        lab = syn.random_sphere_packing(cfg.shape, cfg.porosity, cfg.radius, h, cfg.seed)
    elif cfg.kind == "calendered":
        lab = syn.calendered_electrode(
            cfg.shape, cfg.porosity, cfg.radius, cfg.aspect_ratio, h, cfg.seed
        )
    else:
        lab = syn.sphere_lattice(cfg.shape, "sc", 2 * cfg.radius / 0.9, cfg.radius, h)
    if cfg.binder_fraction > 0:
        lab = syn.add_binder(lab, cfg.binder_fraction, cfg.radius / 2, h)
    names = ("pore", "active", "cbd")[: int(lab.max()) + 1]
    if not cfg.tomogram:
        return Volume(lab, h, names, f"synthetic:{cfg.kind}"), lab
    grey = syn.synthetic_tomogram(lab, blur=cfg.blur, noise_sigma=cfg.noise, seed=cfg.seed + 1)
    return Volume(grey, h, None, f"synthetic-tomogram:{cfg.kind}"), lab


def segment(volume: Any, cfg: SegmentConfig) -> tuple[Any, dict[str, Any]]:
    """Grey values -> label indices (or map stored label values), with a report."""
    from tomofem.image import Volume
    from tomofem.image.io import map_labels

    if cfg.method == "labels" or volume.label_names is not None:
        data = volume.data
        if volume.label_names is None:
            values = cfg.label_values or np.unique(data).tolist()
            data = map_labels(data, values, volume.source)
        else:
            values = list(range(len(volume.label_names)))
        names = ("pore", "active", "cbd")[: int(data.max()) + 1]
        out = Volume(data.astype(np.uint8), volume.spacing, names, volume.source)
        return out, {"method": "labels", "values": list(map(int, values))}
    seg_mod = "tomofem.image.segment"
    if cfg.denoise:
        volume = Volume(
            api("tomofem.image.denoise", "denoise_nlm", "segment")(volume.data),
            volume.spacing,
            None,
            volume.source,
        )
    if cfg.method == "gmm":
        res = api(seg_mod, "segment_gmm", "segment")(volume.data, cfg.phases)
        labels = res.labels
        report = {"method": "gmm", **_plain(res, skip=("labels", "posteriors"))}
    elif cfg.method == "threshold":
        labels = (volume.data > cfg.threshold).astype(np.uint8)
        report = {"method": "threshold", "threshold": cfg.threshold}
    else:
        res = api(seg_mod, "segment_threshold", "segment")(
            volume.data, cfg.phases, method=cfg.method
        )
        labels, report = _labels_and_report(res, cfg.method)
    names = ("pore", "active", "cbd")[: cfg.phases]
    return Volume(labels.astype(np.uint8), volume.spacing, names, volume.source), report


def _plain(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """JSON-ready fields of a result object, leaving out big arrays."""
    import dataclasses

    from tomofem.io.atomic import to_jsonable

    if dataclasses.is_dataclass(obj):
        d = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name not in skip}
    elif isinstance(obj, dict):
        d = {k: v for k, v in obj.items() if k not in skip}
    else:
        return {}
    return {k: to_jsonable(v) for k, v in d.items() if not isinstance(v, np.ndarray)}


def _labels_and_report(res: Any, method: str) -> tuple[np.ndarray, dict[str, Any]]:
    if isinstance(res, np.ndarray):
        return res, {"method": method}
    if isinstance(res, tuple):
        return res[0], {"method": method, **_plain(res[1])}
    return res.labels, {"method": method, **_plain(res, skip=("labels",))}


def analyze(labels: Any) -> dict[str, Any]:
    """Volume fractions and percolation per phase (26-connected pore, 6-connected solids)."""
    from tomofem.image.connectivity import percolation

    data = labels.data
    out: dict[str, Any] = {"phases": {}}
    for idx, name in enumerate(labels.label_names or ()):
        rep = percolation(data, idx)
        out["phases"][name] = {
            "volume_fraction": rep.volume_fraction,
            "connectivity": rep.connectivity,
            "clusters": rep.clusters,
            "isolated_fraction": rep.isolated_fraction,
            "percolates": [a.percolates for a in rep.axes],
            "spanning_fraction": [a.spanning_fraction for a in rep.axes],
        }
    try:
        metrics = api("tomofem.image.metrics", "surface_areas", "analyze")
    except StageUnavailable:
        metrics = None
    if metrics is not None:
        out["specific_surface"] = _plain(metrics(data, labels.spacing))
    return out


def mesh(labels: Any, options: Any, comm: Any = None, progress: Callable | None = None) -> Any:
    """Conformal tetrahedral mesh of the label image (built on rank 0)."""
    mesh_image = api("tomofem.meshing", "mesh_image", "mesh")
    return mesh_image(labels.data, labels.spacing, options)


def homogenize(
    labels: Any, cfg: HomogenizeConfig, tetmesh: Any = None, comm: Any = None
) -> dict[str, Any]:
    """Tortuosity of one phase along the requested axes: FEM on the mesh, voxel baseline.

    Returns
    -------
    dict
        ``{"fem": {axis: TortuosityResult}, "voxel": {axis: TortuosityResult}}``
        (a method is absent when not requested or not available), plus
        ``"unavailable"`` reasons.
    """
    phase = PHASE_INDEX[cfg.phase]
    out: dict[str, Any] = {"phase": cfg.phase, "fem": {}, "voxel": {}, "unavailable": []}
    im = labels.data == phase
    h = float(labels.spacing[0])
    if tetmesh is not None:
        try:
            tort_fem = api("tomofem.homogenization", "tortuosity_fem", "homogenize")
            for ax in cfg.axes:
                out["fem"][ax] = tort_fem(tetmesh, phase + 1, AXES[ax], degree=cfg.degree)
        except StageUnavailable as exc:
            out["unavailable"].append(str(exc))
    if cfg.voxel_baseline or tetmesh is None:
        from tomofem.homogenization.voxel_fvm import tortuosity_voxel

        for ax in cfg.axes:
            out["voxel"][ax] = tortuosity_voxel(im, AXES[ax], voxel_size=h, comm=comm)
    return out


def simulate(tetmesh: Any, cfg: SimulateConfig, comm: Any = None) -> Any:
    """Galvanostatic half-cell discharge on the conformal mesh."""
    discharge = api("tomofem.problems", "run_discharge", "simulate")
    return discharge(tetmesh, cfg)


# --------------------------------------------------------------------------- chain


def _quantities_homogenize(res: dict[str, Any]) -> list[Quantity]:
    rows = []
    for method, label in (("fem", "FEM"), ("voxel", "voxel FVM")):
        for ax, r in res.get(method, {}).items():
            note = label
            b = r.bounds or {}
            if b:
                note += f", Wiener bounds on k_eff [{b['reuss']:.3g}, {b['voigt']:.3g}]"
            rows.append(Quantity("homogenize", f"tau_{ax} {res['phase']}", r.tau, "-", note))
    return rows


def run(
    config: RunConfig,
    folder: Any = None,
    comm: Any = None,
    progress: Callable[..., None] | None = None,
) -> PipelineResult:
    """Run the stages of ``config.stages`` in order.

    Parameters
    ----------
    config
        The resolved configuration.
    folder
        A :class:`tomofem.io.runfolder.RunFolder` to record into, or None for
        an in-memory run (notebooks).
    comm
        Communicator for the parallel stages (None = serial).
    progress
        Called as ``progress(done, total, stage=name)`` after each stage.

    Returns
    -------
    PipelineResult
        Also when stages were unavailable (then ``status == "partial"`` and
        the records say why). Errors in the input still raise.
    """
    res = PipelineResult()
    timer = folder.stage if folder is not None else _null_stage
    with timer("image"):
        volume, truth = load_image(config.image)
    res.outputs.update(volume=volume, truth=truth)
    res.results["image"] = volume.metadata()
    done: set[str] = set()
    wanted = list(config.stages)
    for i, name in enumerate(wanted):
        missing = [d for d in NEEDS[name] if d not in done]
        if missing:
            res.stages.append(StageRecord(name, "skipped", 0.0, f"needs {', '.join(missing)}"))
            continue
        t0 = time.perf_counter()
        try:
            with timer(name):
                _run_stage(name, config, res, comm)
        except StageUnavailable as exc:
            res.stages.append(StageRecord(name, "unavailable", time.perf_counter() - t0, str(exc)))
            log.warning("%s", exc)
            continue
        res.stages.append(StageRecord(name, "done", time.perf_counter() - t0))
        done.add(name)
        log.info("stage %s done in %.1f s", name, time.perf_counter() - t0)
        if progress is not None:
            progress(i + 1, len(wanted), stage=name)
    if folder is not None:
        for key, val in res.results.items():
            folder.add_result(key, val)
    return res


class _null_stage:
    def __init__(self, name: str):
        pass

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _run_stage(name: str, config: RunConfig, res: PipelineResult, comm: Any) -> None:
    out = res.outputs
    if name == "segment":
        labels, report = segment(out["volume"], config.segment)
        if out.get("truth") is not None and out["truth"].shape == labels.data.shape:
            report["accuracy_vs_truth"] = float(np.mean(labels.data == out["truth"]))
        out["labels"] = labels
        res.results["segment"] = report
        for i, name_ in enumerate(labels.label_names or ()):
            frac = float(np.mean(labels.data == i))
            res.quantities.append(Quantity("segment", f"fraction {name_}", frac, "-"))
    elif name == "analyze":
        rep = analyze(out["labels"])
        res.results["analyze"] = rep
        for ph, r in rep["phases"].items():
            perc = "".join("xyz"[a] for a, p in enumerate(r["percolates"]) if p) or "none"
            res.quantities.append(
                Quantity(
                    "analyze",
                    f"isolated {ph}",
                    r["isolated_fraction"],
                    "-",
                    f"percolates along: {perc}",
                )
            )
    elif name == "mesh":
        tm = mesh(out["labels"], config.mesh, comm)
        out["tetmesh"] = tm
        res.results["mesh"] = {"vertices": tm.num_vertices, "cells": tm.num_cells}
        res.quantities.append(Quantity("mesh", "tetrahedra", float(tm.num_cells), "-"))
    elif name == "homogenize":
        h = homogenize(out["labels"], config.homogenize, out.get("tetmesh"), comm)
        out["homogenize"] = h
        res.results["homogenize"] = {
            "phase": h["phase"],
            "fem": {ax: r.to_dict() for ax, r in h["fem"].items()},
            "voxel": {ax: r.to_dict() for ax, r in h["voxel"].items()},
            "unavailable": h["unavailable"],
        }
        res.quantities.extend(_quantities_homogenize(h))
    elif name == "simulate":
        sim = simulate(out["tetmesh"], config.simulate, comm)
        out["simulate"] = sim
        res.results["simulate"] = _plain(sim)
