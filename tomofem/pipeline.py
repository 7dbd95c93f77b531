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
from tomofem.mpi import on_root

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
        from pathlib import Path

        from tomofem.image.io import HDF5_SUFFIXES, RAW_SUFFIXES

        suffix = Path(cfg.source).suffix.lower()
        kw: dict[str, Any] = {}
        if suffix in RAW_SUFFIXES:
            kw = {"shape": cfg.raw_shape, "dtype": cfg.raw_dtype}
        elif suffix in HDF5_SUFFIXES and cfg.dataset is not None:
            kw = {"dataset": cfg.dataset}
        vol = read_volume(cfg.source, spacing=cfg.voxel_size, **kw)
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
    """Grey values -> label indices (or map stored label values), with a report.

    Label images (``method = "labels"``, or a volume that already has phase
    names) are mapped to indices 0, 1, 2 (pore, active, CBD) explicitly: by
    ``cfg.label_values`` (stored value of each phase in tag order; the image
    may hold no other value), or, without them, the image must hold exactly
    ``cfg.phases`` distinct values, taken in ascending order. Anything else
    is refused with the values found (:func:`tomofem.image.io.resolve_label_values`).
    The shared electrode stores 0 = pore, 85 = NMC, 170 = CBD:
    ``phases = 3, label_values = [0, 85, 170]``.
    """
    from tomofem.image import Volume
    from tomofem.image.io import map_labels, phase_names, resolve_label_values

    if cfg.method == "labels" or volume.label_names is not None:
        data = volume.data
        report: dict[str, Any] = {"method": "labels"}
        if volume.label_names is None:
            present = np.unique(data)
            src = volume.source or "the label image"
            values = resolve_label_values(present, cfg.phases, cfg.label_values, src)
            data = map_labels(data, values, src)
            report["values"] = [v.item() if hasattr(v, "item") else v for v in values]
            report["phases"] = dict(zip(phase_names(len(values)), report["values"], strict=True))
            report["values_present"] = [v.item() for v in present]
    else:
        img = volume.data
        if cfg.denoise:
            nl_means = api("tomofem.image.denoise", "nl_means", "segment")
            img, rep = nl_means(img)
            report = {"denoise": _plain(rep)}
        else:
            report = {}
        seg = api("tomofem.image.segment", "threshold", "segment")
        if cfg.method == "gmm":
            res = api("tomofem.image.segment", "gmm_segment", "segment")(img, cfg.phases)
        elif cfg.method == "threshold":
            res = seg(img, method="user", values=[cfg.threshold])
        else:
            res = seg(img, method=cfg.method, classes=cfg.phases)
        data = res.labels
        report.update({"method": cfg.method, **res.summary()})
    if cfg.min_island > 0:
        cleanup = api("tomofem.image.clean", "cleanup", "segment")
        data, reps = cleanup(data, min_voxels=cfg.min_island)
        report["cleanup"] = [_plain(r) for r in reps]
    names = phase_names(max(int(data.max()) + 1, 2))
    return Volume(data.astype(np.uint8), volume.spacing, names, volume.source), report


def _plain(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """JSON-ready fields of a result object, leaving out arrays (voxels, fields)."""
    import dataclasses

    from tomofem.io.atomic import to_jsonable

    if hasattr(obj, "summary") and callable(obj.summary):
        return to_jsonable(obj.summary())
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        d = obj.to_dict()
    elif dataclasses.is_dataclass(obj):
        d = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    elif isinstance(obj, dict):
        d = obj
    else:
        return {}
    return {k: to_jsonable(v) for k, v in d.items() if k not in skip and not _is_array(v)}


def _is_array(v: Any) -> bool:
    return isinstance(v, np.ndarray) and v.size > 64


def analyze(labels: Any) -> dict[str, Any]:
    """Volume fractions, specific interface areas and percolation per phase and axis.

    Connectivity follows the image module's dual convention (26-connected
    pore, 6-connected solids).
    """
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
    areas = api("tomofem.image.metrics", "interface_areas", "analyze")
    out["interfaces"] = _plain(areas(data, labels.spacing))
    return out


def mesh(labels: Any, options: Any, comm: Any = None) -> tuple[Any, Any]:
    """Conformal tetrahedral mesh of the label image, built on rank 0.

    Returns
    -------
    tetmesh, report
        The :class:`tomofem.meshing.TetMesh` and its
        :class:`tomofem.meshing.MeshReport` on rank 0; ``None, None`` on the
        other ranks (distribute with :func:`tomofem.meshing.to_dolfinx`).
    """
    mesh_image = api("tomofem.meshing", "mesh_image", "mesh")
    from tomofem.meshing import check_mesh

    def build() -> tuple[Any, Any]:
        tm = mesh_image(labels.data, labels.spacing, options)
        return tm, check_mesh(tm)

    return on_root(comm, build, share=False) or (None, None)


def distribute(tetmesh: Any, comm: Any) -> Any:
    """Distribute the rank-0 mesh over ``comm`` (a :class:`tomofem.meshing.DolfinxMesh`)."""
    from tomofem._fenics import MPI
    from tomofem.meshing import to_dolfinx

    return to_dolfinx(tetmesh, comm if comm is not None else MPI.COMM_SELF)


def homogenize(
    labels: Any, cfg: HomogenizeConfig, dmesh: Any = None, comm: Any = None
) -> dict[str, Any]:
    """Tortuosity of one phase along the requested axes: FEM on the mesh, voxel baseline.

    Parameters
    ----------
    labels
        The label :class:`~tomofem.image.Volume` (voxel baseline).
    dmesh
        The distributed conformal mesh (FEM), or None for the voxel solve only.

    Returns
    -------
    dict
        ``{"phase", "fem": {axis: TortuosityResult}, "voxel": {axis: TortuosityResult},
        "tensors": {bc: TensorResult}, "rve": RVEResult or None}``: the FEM
        effective tensors of ``cfg.tensors`` (with a mesh) and the voxel RVE
        study along the first axis when ``cfg.rve_sizes`` is set (on rank 0,
        shared with every rank).
    """
    from tomofem import tags

    phase = PHASE_INDEX[cfg.phase]
    if not np.any(labels.data == phase):  # else tau = inf "does not percolate": misleading
        from tomofem.errors import ImageError

        present = [int(v) for v in np.unique(labels.data)]
        names = ", ".join(f"{i} = {n}" for i, n in enumerate(labels.label_names or ()))
        raise ImageError(
            f"homogenize.phase = {cfg.phase!r} (label {phase}) is absent from "
            f"{labels.source or 'the label image'}, which holds labels {present}"
            + (f" ({names})" if names else "")
            + "; choose a phase the image has, or check the segmentation"
        )
    out: dict[str, Any] = {"phase": cfg.phase, "fem": {}, "voxel": {}, "tensors": {}, "rve": None}
    if dmesh is not None:
        eff_tensor = api("tomofem.homogenization.tensor", "effective_tensor", "homogenize")
        for bc in cfg.tensors:
            out["tensors"][bc] = eff_tensor(
                dmesh.mesh, dmesh.cell_tags, {tags.phase_id(phase): 1.0}, bc, degree=cfg.degree
            )
        tort_fem = api("tomofem.homogenization.tortuosity", "tortuosity_fem", "homogenize")
        for ax in cfg.axes:
            out["fem"][ax] = tort_fem(
                dmesh.mesh,
                dmesh.cell_tags,
                {tags.phase_id(phase): 1.0},
                AXES[ax],
                degree=cfg.degree,
            )
    if cfg.voxel_baseline or dmesh is None:
        from tomofem.homogenization.voxel_fvm import tortuosity_voxel

        im = labels.data == phase
        h = tuple(float(v) for v in labels.spacing)  # per axis: FIB-SEM voxels are anisotropic
        for ax in cfg.axes:
            out["voxel"][ax] = tortuosity_voxel(im, AXES[ax], voxel_size=h, comm=comm)
    if cfg.rve_sizes:
        out["rve"] = on_root(comm, _rve, labels.data == phase, cfg)
    return out


def _rve(im: np.ndarray, cfg: HomogenizeConfig) -> Any:
    """Voxel RVE study of ``im`` along the first of ``cfg.axes`` (sizes above the image: error)."""
    from tomofem.errors import ConfigError
    from tomofem.homogenization.rve import rve_study, voxel_evaluator

    too_big = [n for n in cfg.rve_sizes if n > min(im.shape)]
    if too_big:
        raise ConfigError(
            [
                f"homogenize.rve_sizes: {too_big} exceed the smallest image edge "
                f"{min(im.shape)} voxels; use sub-volume edges up to {min(im.shape)}"
            ]
        )
    axis = AXES[cfg.axes[0]]
    return rve_study(
        im,
        sorted(cfg.rve_sizes),
        samples=cfg.rve_samples,
        axis=axis,
        evaluate=voxel_evaluator(axis),
    )


def simulate(
    dmesh: Any,
    cfg: SimulateConfig,
    output_dir: Any = None,
    resume_from: Any = None,
    length_scale: float = 1e-6,
) -> Any:
    """Half-cell run of ``cfg``'s protocol on the distributed conformal mesh.

    Parameters
    ----------
    dmesh
        :class:`tomofem.meshing.DolfinxMesh`; coordinates in ``length_scale`` metres.
    output_dir
        Folder for the solver's checkpoints and fields (None: nothing written).
    resume_from
        A checkpoint file to continue from.
    length_scale
        Metres per mesh length unit (1e-6: the image's voxel size is in um).
    """
    from tomofem import tags

    run_half_cell = api("tomofem.solvers.discharge", "run_half_cell", "simulate")
    from tomofem.materials import half_cell
    from tomofem.problems.electrochem import HalfCellConfig
    from tomofem.solvers.discharge import Protocol, SolverOptions, Step

    if cfg.mode == "discharge":
        steps = (Step("current", cfg.c_rate, until_voltage=cfg.v_min, duration=cfg.t_end),)
    else:
        steps = (
            Step("current", -cfg.c_rate, until_voltage=cfg.v_max, duration=cfg.t_end),
            Step("voltage", cfg.v_max, until_c_rate=0.05, duration=cfg.t_end),
        )
    protocol = Protocol(steps, initial_soc=cfg.soc0)
    cell = HalfCellConfig(
        length_scale=length_scale,
        collector_face=tags.BoxFace[cfg.collector_face.upper()],
        counter=cfg.counter,
        cbd=cfg.cbd,
        dilute=cfg.dilute,
    )
    solver = SolverOptions(
        linear=cfg.linear,
        time_order=cfg.time_order,
        control=cfg.control,
        max_soc_step=cfg.max_soc_step,
    )
    return run_half_cell(
        dmesh,
        half_cell(cfg.electrode, cfg.electrolyte),
        protocol,
        cell,
        solver,
        output_dir=output_dir,
        checkpoint_every=cfg.checkpoint_every if output_dir is not None else 0,
        vtx_every=cfg.vtx_every if output_dir is not None else 0,
        resume_from=resume_from,
    )


# --------------------------------------------------------------------------- chain


def _quantities_homogenize(res: dict[str, Any]) -> list[Quantity]:
    rows = []
    for method, label in (("fem", "FEM"), ("voxel", "voxel FVM")):
        for ax, r in res.get(method, {}).items():
            note = f"{label}, {r.unknowns} unknowns"
            b = r.bounds or {}
            if b:
                note += f", k_eff {r.k_eff:.4g} in Wiener [{b['reuss']:.3g}, {b['voigt']:.3g}]"
            if not r.percolating:
                note = f"{label}: does not percolate"
            rows.append(Quantity("homogenize", f"tau_{ax} {res['phase']}", r.tau, "-", note))
    for bc, t in res.get("tensors", {}).items():
        ev = ", ".join(f"{v:.4g}" for v in t.eigenvalues)
        note = f"FEM {bc} tensor, eigenvalues {ev}"
        mixed = {ax: r.k_eff for ax, r in res.get("fem", {}).items() if r.k_eff > 0}
        if mixed:  # boundary-condition sensitivity: apparent tensor vs the mixed set-up
            spread = ", ".join(
                f"{ax} {t.array[AXES[ax], AXES[ax]] / k - 1:+.1%}" for ax, k in mixed.items()
            )
            note += f"; diagonal vs mixed-BC k_eff: {spread}"
        rows.append(Quantity("homogenize", f"K_eff {bc} max eig", max(t.eigenvalues), "-", note))
    rve = res.get("rve")
    if rve is not None:
        note = "converged" if rve.l_rve is not None else "no tested edge converged"
        rows.append(
            Quantity(
                "homogenize",
                "RVE edge",
                float(rve.l_rve) if rve.l_rve is not None else float("nan"),
                "voxels",
                f"voxel tau_{'xyz'[rve.axis]} within {rve.tol:.0%}: {note}",
            )
        )
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
        A :class:`tomofem.io.runfolder.RunFolder` to record into (results,
        pictures, mesh, solver output), or None for an in-memory run.
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
    with timer("image"):  # read once, on rank 0: only the labels travel to the other ranks
        volume, truth = on_root(comm, load_image, config.image, share=False) or (None, None)
    res.outputs.update(volume=volume, truth=truth)
    if volume is not None:
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
                _run_stage(name, config, res, comm, folder)
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
        if config.output.pictures:
            with timer("pictures"):
                res.results["pictures"] = pictures(res, folder)
        for key, val in res.results.items():
            folder.add_result(key, val)
        folder.meta["summary"] = [vars(q) for q in res.quantities]
        folder.meta["stages"] = [vars(s) for s in res.stages]
    return res


class _null_stage:
    def __init__(self, name: str):
        pass

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _on_root(comm: Any) -> bool:
    return comm is None or comm.rank == 0


def _run_stage(name: str, config: RunConfig, res: PipelineResult, comm: Any, folder: Any) -> None:
    out = res.outputs
    if name == "segment":
        labels, report = on_root(comm, segment, out["volume"], config.segment)
        if out.get("truth") is not None and out["truth"].shape == labels.data.shape:
            report["accuracy_vs_truth"] = float(np.mean(labels.data == out["truth"]))
            res.quantities.append(
                Quantity("segment", "voxels right", report["accuracy_vs_truth"], "-", "vs truth")
            )
        out["labels"] = labels
        res.results["segment"] = report
        for i, name_ in enumerate(labels.label_names or ()):
            frac = float(np.mean(labels.data == i))
            res.quantities.append(Quantity("segment", f"fraction {name_}", frac, "-"))
    elif name == "analyze":
        rep = on_root(comm, analyze, out["labels"])
        res.results["analyze"] = rep
        for pair, sv in rep["interfaces"].get("specific", {}).items():
            res.quantities.append(
                Quantity("analyze", f"specific area {pair}", sv, "1/um", "interface a|b")
            )
        for ph, r in rep["phases"].items():
            perc = "".join("xyz"[a] for a, p in enumerate(r["percolates"]) if p) or "none"
            res.quantities.append(
                Quantity(
                    "analyze", f"isolated {ph}", r["isolated_fraction"], "-", f"percolates: {perc}"
                )
            )
    elif name == "mesh":
        tm, report = mesh(out["labels"], config.mesh, comm)
        out["tetmesh"], out["mesh_report"] = tm, report
        if _on_root(comm):
            res.results["mesh"] = {"route": tm.route, **_plain(report)}
            res.quantities.append(Quantity("mesh", "tetrahedra", tm.num_cells, "-", tm.route))
            res.quantities.append(Quantity("mesh", "min dihedral", report.min_dihedral_deg, "deg"))
        out["dmesh"] = distribute(tm, comm)
        if folder is not None and config.output.fields:
            write_mesh(out["dmesh"], folder.file("mesh.xdmf"))
    elif name == "homogenize":
        h = homogenize(out["labels"], config.homogenize, out.get("dmesh"), comm)
        out["homogenize"] = h
        res.results["homogenize"] = {
            "phase": h["phase"],
            "fem": {ax: r.to_dict() for ax, r in h["fem"].items()},
            "voxel": {ax: r.to_dict() for ax, r in h["voxel"].items()},
            "tensors": {bc: t.to_dict() for bc, t in h["tensors"].items()},
            "rve": h["rve"].to_dict() if h["rve"] is not None else None,
            "units": {
                "tau": "-",
                "k_eff": "k_phase",
                "tensor": "k_phase",
                "length": "um",
                "area": "um2",
                "rve edges": "voxels",
            },
        }
        res.quantities.extend(_quantities_homogenize(h))
    elif name == "simulate":
        sim_dir = folder.file("simulate") if folder is not None else None
        length_scale = 1e-6  # voxel sizes are in um
        sim = simulate(out["dmesh"], config.simulate, sim_dir, length_scale=length_scale)
        _record_simulation(res, sim)


def _record_simulation(res: PipelineResult, sim: Any) -> None:
    res.outputs["simulate"] = sim
    res.results["simulate"] = {
        k: v for k, v in _plain(sim).items() if k not in ("series", "j_histogram")
    }
    s = sim.series
    res.quantities.append(Quantity("simulate", "capacity", sim.capacity_mAh, "mAh"))
    res.quantities.append(
        Quantity("simulate", "final voltage", s["voltage"][-1], "V", sim.stop_reason)
    )
    res.quantities.append(Quantity("simulate", "time steps", sim.steps_accepted, "-"))


def resume(run_dir: Any, comm: Any = None) -> PipelineResult:
    """Continue the simulation of a run folder from its last checkpoint.

    Everything comes from the folder: the resolved ``config.toml`` and
    ``simulate/checkpoint.h5`` (which holds the mesh, the fields and the loop
    state), so neither the image nor the mesher is needed. On the same number
    of ranks the continuation is bitwise identical to an uninterrupted run.

    Raises
    ------
    RunFolderError
        If ``run_dir`` is not a run folder or holds no checkpoint.
    """
    from pathlib import Path

    from tomofem._fenics import MPI
    from tomofem.config import load_config
    from tomofem.io.checkpoint import read_mesh
    from tomofem.solvers.discharge import CHECKPOINT_NAME

    comm = comm if comm is not None else MPI.COMM_WORLD
    folder = Path(run_dir)
    cfg = load_config(folder / "config.toml")
    ckpt = folder / "simulate" / CHECKPOINT_NAME
    dmesh = read_mesh(ckpt, comm)
    res = PipelineResult()
    t0 = time.perf_counter()
    sim = simulate(dmesh, cfg.simulate, folder / "simulate", resume_from=ckpt)
    res.stages.append(StageRecord("simulate", "done", time.perf_counter() - t0, "resumed"))
    _record_simulation(res, sim)
    return res


def write_mesh(dmesh: Any, path: Any) -> None:
    """Write the distributed mesh with its cell and facet tags as XDMF (ParaView, DOLFINx)."""
    from tomofem._fenics import dolfinx

    with dolfinx.io.XDMFFile(dmesh.mesh.comm, str(path), "w") as xdmf:
        xdmf.write_mesh(dmesh.mesh)
        dmesh.mesh.topology.create_connectivity(2, 3)
        xdmf.write_meshtags(dmesh.cell_tags, dmesh.mesh.geometry)
        xdmf.write_meshtags(dmesh.facet_tags, dmesh.mesh.geometry)


def pictures(res: PipelineResult, folder: Any) -> list[str]:
    """Write the run's PNGs (rank 0): slices, mesh render, tortuosity bars, voltage curve.

    A picture that fails (e.g. no OpenGL for pyvista) is logged and skipped:
    pictures never cost a run its numbers.
    """
    if folder.rank != 0:
        return []
    from tomofem.viz import plots

    out, written = res.outputs, []

    def attempt(name: str, func: Callable[[], Any]) -> None:
        try:
            func()
            written.append(name)
        except Exception as exc:  # a picture must not cost the numbers
            log.warning("picture %s not written: %s", name, exc)

    if "labels" in out:
        ims = {}
        if out["volume"].label_names is None:
            ims["tomogram"] = out["volume"].data
        ims["segmented"] = out["labels"].data
        if out.get("truth") is not None:
            ims["ground truth"] = out["truth"]
        attempt("slices.png", lambda: plots.plot_slices(ims, folder.file("slices.png")))
    tm = out.get("tetmesh")
    if tm is not None:
        attempt(
            "mesh.png",
            lambda: plots.render_mesh(
                tm.points, tm.cells, tm.cell_tags, folder.file("mesh.png"), title=tm.route
            ),
        )
    elif "labels" in out:
        lab = out["labels"]
        attempt(
            "voxels.png",
            lambda: plots.render_voxels(lab.data, folder.file("voxels.png"), lab.spacing),
        )
    if "homogenize" in out:
        h = out["homogenize"]
        taus = {
            "FEM" if m == "fem" else "voxel FVM": {ax: r.tau for ax, r in h[m].items()}
            for m in ("fem", "voxel")
            if h[m]
        }
        attempt(
            "tortuosity.png",
            lambda: plots.plot_tortuosity(
                taus, folder.file("tortuosity.png"), title=f"{h['phase']} phase"
            ),
        )
        rve = h.get("rve")
        if rve is not None:
            attempt(
                "rve.png",
                lambda: plots.plot_rve(
                    [s.edge for s in rve.sizes],
                    {f"voxel tau_{'xyz'[rve.axis]}": [s.taus for s in rve.sizes]},
                    folder.file("rve.png"),
                ),
            )
    if "simulate" in out:
        s = out["simulate"].series
        nominal_mAh = out["simulate"].one_c_current_A * 1e3  # 1C empties it in one hour
        attempt(
            "voltage.png",
            lambda: plots.plot_voltage(
                {"simulation": (100.0 * np.asarray(s["capacity"]) / nominal_mAh, s["voltage"])},
                folder.file("voltage.png"),
                xlabel=f"depth of discharge [% of {nominal_mAh:.3g} mAh]",
            ),
        )
        attempt(
            "steps.png",
            lambda: plots.plot_series(
                s["time"],
                {"dt [s]": s["dt"], "Newton iterations": s["newton_iterations"]},
                folder.file("steps.png"),
                "time [s]",
                "value",
                logy=True,
            ),
        )
    return written
