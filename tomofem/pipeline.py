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
import math
import textwrap
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tomofem.config import (
    HomogenizeConfig,
    ImageConfig,
    MechanicsConfig,
    NetworkConfig,
    RunConfig,
    SegmentConfig,
    SimulateConfig,
)
from tomofem.errors import ConfigError, TomofemError
from tomofem.mpi import on_root

log = logging.getLogger(__name__)

AXES = {"x": 0, "y": 1, "z": 2}
PHASE_INDEX = {"pore": 0, "active": 1, "solid": 1, "cbd": 2}
#: Boundary-condition spread above which a box is not an RVE along an axis (the default
#: tolerance of :func:`tomofem.homogenization.rve.rve_study`).
BC_SPREAD_TOL = 0.05

#: Which earlier stages each stage needs (besides the image).
NEEDS = {
    "segment": (),
    "analyze": ("segment",),
    "mesh": ("segment",),
    "homogenize": ("segment",),
    "simulate": ("mesh",),
    "mechanics": ("mesh",),
    "network": ("segment",),
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
    """What happened to one stage.

    ``status`` is ``done``, ``skipped``, ``unavailable``, ``failed`` or
    ``interrupted``; ``reason`` says why (the error message of the last two).
    """

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
    notes
        Per stage, sentences that say how to read its numbers (which tau to
        use, what the boundary-condition spread means, how far the discharge
        got); printed under the table.
    status
        ``complete`` if every requested stage ran, else ``partial``.
    """

    stages: list[StageRecord] = field(default_factory=list)
    quantities: list[Quantity] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

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
        notes = [n for stage_notes in self.notes.values() for n in stage_notes]
        if notes:
            lines.append("")
        for n in notes:
            lines.extend(textwrap.wrap(n, width=100, subsequent_indent="  "))
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


@dataclass
class MeshOutcome:
    """What the mesh stage made.

    Attributes
    ----------
    tetmesh
        The :class:`tomofem.meshing.TetMesh` on rank 0 (None on the other
        ranks, and on every rank when meshed distributed).
    report
        Its :class:`tomofem.meshing.MeshReport` (rank 0; every rank when distributed).
    dmesh
        The distributed :class:`tomofem.meshing.DolfinxMesh` when meshed
        distributed, else None (distribute ``tetmesh`` with :func:`distribute`).
    route
        The route that made the mesh.
    stats
        The distributed route's statistics (``DistributedStats.to_dict()``), or None.
    """

    tetmesh: Any
    report: Any
    dmesh: Any = None
    route: str | None = None
    stats: dict[str, Any] | None = None


def mesh(labels: Any, options: Any, comm: Any = None, grey: Any = None) -> MeshOutcome:
    """Conformal tetrahedral mesh of the label image: distributed, or built on rank 0.

    Under MPI with ``options.distributed`` (``"auto"``) every rank meshes its
    slab (:func:`mesh_distributed`); otherwise, or if that fails, rank 0
    runs the route chain. With ``grey`` (the tomogram the labels were
    segmented from) and ``options.subvoxel``, the pore's interfaces come from
    the grey values' partial volumes (:mod:`tomofem.meshing.subvoxel`,
    level-set route, rank 0); the route chain is the fallback if that mesh
    cannot be made.

    Returns
    -------
    MeshOutcome
    """
    mesh_image = api("tomofem.meshing", "mesh_image", "mesh")
    from tomofem.meshing import check_mesh

    use_grey = grey is not None and getattr(options, "subvoxel", False) and not options.periodic
    if comm is not None and comm.size > 1:  # the tomogram lives on rank 0: decide together
        use_grey = comm.bcast(use_grey, root=0)
    why_not = _why_not_distributed(options, comm, use_grey)
    if why_not is None:
        made = mesh_distributed(labels, options, comm)
        if made is not None:
            return made
    elif getattr(options, "distributed", "off") != "off" and comm is not None and comm.size > 1:
        log.info("mesh: meshing on rank 0 and distributing the mesh (%s)", why_not)

    def build() -> tuple[Any, Any]:
        if use_grey:
            tm = _mesh_subvoxel(grey, labels, options)
            if tm is not None:
                return tm, check_mesh(tm)
        tm = mesh_image(labels.data, labels.spacing, options)
        return tm, check_mesh(tm)

    tm, report = on_root(comm, build, share=False) or (None, None)
    return MeshOutcome(tm, report, route=tm.route if tm is not None else None)


def _why_not_distributed(options: Any, comm: Any, use_grey: bool) -> str | None:
    """Why the image is not meshed distributed (None: it is)."""
    mode = getattr(options, "distributed", "off")
    size = 1 if comm is None else comm.size
    if mode == "off":
        return "mesh.distributed = 'off'"
    if mode == "auto" and size == 1:
        return "one rank"
    if options.periodic:
        return "periodic meshes are made on rank 0"
    if options.component_tags:
        return "component_tags are computed on rank 0"
    if use_grey:
        return "sub-voxel interfaces from grey values are computed on rank 0"
    if options.routes is not None and options.routes[:1] != ("levelset",):
        return f"the route chain {list(options.routes)} does not start with levelset"
    return None


def mesh_distributed(labels: Any, options: Any, comm: Any) -> MeshOutcome | None:
    """Mesh ``labels`` by the distributed level-set route on ``comm`` (every rank its slab).

    Returns
    -------
    MeshOutcome or None
        The distributed mesh with its collective report and the route's
        statistics, or None when the route failed (logged at info level; the
        caller meshes on rank 0).

    Raises
    ------
    ResourceError
        When the estimated cells per rank exceed ``options.max_cells``
        (before any meshing).
    """
    from dataclasses import replace

    from tomofem._fenics import MPI
    from tomofem.errors import MeshingError
    from tomofem.meshing.distributed import distributed_levelset
    from tomofem.meshing.distributed_checks import check_distributed
    from tomofem.meshing.levelset import LevelSetOptions
    from tomofem.meshing.pipeline import levelset_step, refuse_oversize, validate_labels

    comm = comm if comm is not None else MPI.COMM_SELF
    lab = validate_labels(labels.data)
    per_rank = replace(options, max_cells=options.max_cells * comm.size, routes=("levelset",))
    refuse_oversize(lab, per_rank, ["levelset"])
    opts = LevelSetOptions(lattice_step=levelset_step(options))
    try:
        dm, stats = distributed_levelset(lab, labels.spacing, opts, comm)
    except MeshingError as exc:
        if comm.rank == 0:
            log.info("mesh: distributed level-set meshing failed (%s); meshing on rank 0", exc)
        return None
    for i, n in enumerate(labels.label_names or ()):  # the image's phase names, when it has them
        if i + 1 in dm.phase_names:
            dm.phase_names[i + 1] = n
    return MeshOutcome(None, check_distributed(dm), dm, "levelset-distributed", stats.to_dict())


def _grey_source(volume: Any, config: RunConfig) -> Any:
    """Return the grey volume the labels were segmented from (None for a label image)."""
    if volume is None or getattr(volume, "label_names", None) is not None:
        return None
    return None if config.segment.method == "labels" else volume


def _mesh_subvoxel(grey: Any, labels: Any, options: Any, lattice: Any = None) -> Any:
    """Level-set mesh with interfaces from the grey values, or None (logged) if it fails."""
    from dataclasses import replace

    from tomofem.errors import MeshingError
    from tomofem.meshing.levelset import LevelSetOptions, mesh_levelset
    from tomofem.meshing.subvoxel import auto_sigma, subvoxel_fields

    g = np.asarray(grey.data if hasattr(grey, "data") else grey, dtype=np.float32)
    lab = labels.data
    if g.shape != lab.shape or not np.any(lab == 0):
        return None
    present = np.unique(lab)
    means = np.zeros(int(present.max()) + 1)
    for k in present:
        means[k] = float(g[lab == k].mean())
    sigma = auto_sigma(g, lab, means)
    base = LevelSetOptions()
    step = max(float(options.interface_size), base.lattice_step)
    if lattice is not None:
        base, step = lattice, lattice.lattice_step
    try:
        sf = subvoxel_fields(g, lab, means, sigma=sigma, spacing=labels.spacing)
        tm, _ = mesh_levelset(
            lab,
            labels.spacing,
            replace(base, lattice_step=step),
            fields=sf.fields,
            fractions=sf.fractions,
        )
    except MeshingError as exc:
        log.info("mesh: sub-voxel interfaces failed (%s); meshing the labels instead", exc)
        return None
    log.info(
        "mesh: sub-voxel interfaces from grey values (smoothing %.2g voxel, slope %.3g/voxel); "
        "pore fraction %.4f (labels %.4f)",
        sigma,
        sf.slope,
        sf.fractions[0],
        sf.pore_fraction_voxels,
    )
    return replace(tm, route="levelset-subvoxel")


def distribute(tetmesh: Any, comm: Any) -> Any:
    """Distribute the rank-0 mesh over ``comm`` (a :class:`tomofem.meshing.DolfinxMesh`)."""
    from tomofem._fenics import MPI
    from tomofem.meshing import to_dolfinx

    return to_dolfinx(tetmesh, comm if comm is not None else MPI.COMM_SELF)


def homogenize(
    labels: Any,
    cfg: HomogenizeConfig,
    dmesh: Any = None,
    comm: Any = None,
    mesh_options: Any = None,
    grey: Any = None,
) -> dict[str, Any]:
    """Tortuosity of one phase along the requested axes: FEM on the mesh, voxel baseline.

    Parameters
    ----------
    labels
        The label :class:`~tomofem.image.Volume` (voxel baseline).
    dmesh
        The distributed conformal mesh (FEM), or None for the voxel solve only.
    mesh_options
        The run's :class:`~tomofem.meshing.MeshOptions` (sizes of the geometry
        variants of the error bar).
    grey
        The grey volume the labels were segmented from, if any (the refined
        variant then keeps the sub-voxel interfaces).

    Returns
    -------
    dict
        ``{"phase", "fem": {axis: TortuosityResult}, "voxel": {axis: TortuosityResult},
        "tensors": {bc: TensorResult}, "rve": RVEResult or None}``: the FEM
        effective tensors of ``cfg.tensors`` (with a mesh) and the voxel RVE
        study along the first axis when ``cfg.rve_sizes`` is set (on rank 0,
        shared with every rank). With ``cfg.error_bars`` and a mesh also
        ``"fem_other"`` (the other Lagrange degree), ``"variants"`` ({name:
        {axis: tau}}, P1 on alternative meshes) and ``"recommended"`` ({axis:
        :class:`~tomofem.homogenization.errorbars.TauEstimate` as a dict with
        the keys of :data:`RECOMMENDED_KEYS`}).
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
        if cfg.permeability:
            perm = api("tomofem.homogenization.permeability", "permeability_axis", "homogenize")
            # meshes are in um (voxel sizes in um): K in m2; the velocity fields go to the
            # run folder (VTX) and the velocity picture
            out["permeability"], out["velocity"] = {}, {}
            for ax in cfg.axes:
                r, sol = perm(
                    dmesh.mesh, dmesh.cell_tags, AXES[ax], length_unit=1e-6, keep_fields=True
                )
                out["permeability"][ax], out["velocity"][ax] = r, sol.u[0]
    if cfg.voxel_baseline or dmesh is None:
        from tomofem.homogenization.voxel_fvm import tortuosity_voxel

        im = labels.data == phase
        h = tuple(float(v) for v in labels.spacing)  # per axis: FIB-SEM voxels are anisotropic
        for ax in cfg.axes:
            out["voxel"][ax] = tortuosity_voxel(im, AXES[ax], voxel_size=h, comm=comm)
    if cfg.rve_sizes:
        out["rve"] = on_root(comm, _rve, labels.data == phase, cfg)
    if dmesh is not None and cfg.error_bars:
        _error_bars(out, labels, cfg, dmesh, comm, mesh_options, grey)
    return out


#: The refined geometry variant (recommended when affordable) and its name.
REFINED = "refined (lattice step and smoothing halved)"


def _geometry_variants(mesh_options: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    """Alternative level-set settings for the geometry error bar.

    The refined mesh (half the lattice step and smoothing: about 8 times the
    vertices) only where its lattice stays below the level-set route's
    escalation limit; the pore's diagonal contacts left unbridged at the run's
    lattice step.
    """
    from dataclasses import replace

    from tomofem.meshing.levelset import LevelSetOptions

    base = LevelSetOptions()
    step = float(getattr(mesh_options, "interface_size", base.lattice_step) or base.lattice_step)
    base = replace(base, lattice_step=max(step, base.lattice_step))
    fine = replace(base, lattice_step=base.lattice_step / 2, sigma=base.sigma / 2)
    out = {}
    if 2.0 * float(np.prod(np.asarray(shape) / fine.lattice_step)) <= base.escalation_max_vertices:
        out[REFINED] = fine
    else:
        log.info("homogenize: no refined geometry variant (its lattice would be too large)")
    out["pore contacts not bridged"] = replace(base, bridge_pore=False)
    return out


def _error_bars(
    out: dict[str, Any],
    labels: Any,
    cfg: HomogenizeConfig,
    dmesh: Any,
    comm: Any,
    options: Any,
    grey: Any = None,
) -> None:
    """Add the other degree, the geometry variants and the recommended tau per axis to ``out``."""
    from tomofem import tags
    from tomofem.homogenization.errorbars import estimate_tau
    from tomofem.homogenization.tortuosity import tortuosity_fem
    from tomofem.meshing.levelset import mesh_levelset

    phase = PHASE_INDEX[cfg.phase]
    cond = {tags.phase_id(phase): 1.0}
    other = 2 if cfg.degree == 1 else 1
    out["fem_other"] = {
        ax: tortuosity_fem(dmesh.mesh, dmesh.cell_tags, cond, AXES[ax], degree=other)
        for ax in cfg.axes
    }
    by_degree = {cfg.degree: out["fem"], other: out["fem_other"]}
    out["variants"] = {}
    for name, opts in _geometry_variants(options, labels.data.shape).items():

        def build(o: Any = opts, refined: bool = name == REFINED) -> Any:
            if refined and grey is not None:  # the run's sub-voxel interfaces, finer
                tm = _mesh_subvoxel(grey, labels, options, lattice=o)
                if tm is not None:
                    return tm
            return mesh_levelset(labels.data, labels.spacing, o)[0]

        try:
            dm = distribute(on_root(comm, build, share=False), comm)
        except Exception as exc:  # a variant that cannot be meshed narrows the bar: say so
            log.info("homogenize: geometry variant %r not meshed (%s)", name, exc)
            continue
        out["variants"][name] = {
            ax: float(tortuosity_fem(dm.mesh, dm.cell_tags, cond, AXES[ax], degree=1).tau)
            for ax in cfg.axes
        }
        del dm
    out["recommended"] = {}
    for ax in cfg.axes:
        cand = {f"fem-p{d}": float(r[ax].tau) for d, r in by_degree.items()}
        if ax in out["voxel"]:
            cand["voxel-fvm"] = float(out["voxel"][ax].tau)
        var = {n: v[ax] for n, v in out["variants"].items()}
        est = estimate_tau(ax, cand, var, recommend=REFINED)
        out["recommended"][ax] = {
            "tau_recommended": est.tau,
            "tau_error_discretisation": est.discretisation,
            "tau_error_geometry": est.geometry,
            "recommended_reason": est.reason,
            **est.to_dict(),
        }


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
        Folder for the checkpoints, fields and ``result.json``, written by the
        observers of :func:`tomofem.io.run_observers.run_folder_observers`
        (None: nothing written).
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
    from tomofem.io.run_observers import resume_from as restorer
    from tomofem.io.run_observers import run_folder_observers

    observers = []
    if output_dir is not None:
        comm = dmesh.mesh.comm
        observers = run_folder_observers(output_dir, comm, cfg.checkpoint_every, cfg.vtx_every)
    return run_half_cell(
        dmesh,
        half_cell(cfg.electrode, cfg.electrolyte),
        protocol,
        cell,
        solver,
        observers=observers,
        resume=restorer(resume_from) if resume_from is not None else None,
    )


def mechanics(dmesh: Any, cfg: MechanicsConfig) -> dict[str, Any]:
    """Effective stiffness of the film for each boundary condition of ``cfg``.

    Returns
    -------
    dict
        ``{bc: StiffnessResult}`` (:mod:`tomofem.homogenization.elasticity`).
    """
    effective_stiffness = api(
        "tomofem.homogenization.elasticity", "effective_stiffness", "mechanics"
    )
    phases = _mechanics_phases(cfg)
    return {
        bc: effective_stiffness(dmesh.mesh, dmesh.cell_tags, phases, bc, degree=cfg.degree)
        for bc in cfg.bcs
    }


def _mechanics_phases(cfg: MechanicsConfig) -> dict[int, Any]:
    from tomofem import tags
    from tomofem.problems.elasticity import ElasticPhase

    phases = {int(tags.Phase.ACTIVE): ElasticPhase(cfg.active_young, cfg.active_poisson)}
    if cfg.cbd_load_bearing:
        phases[int(tags.Phase.CBD)] = ElasticPhase(cfg.cbd_young, cfg.cbd_poisson)
    return phases


def lithiation_stress_from_checkpoint(
    path: str | Path, cfg: MechanicsConfig, comm: Any, fields_dir: Path | None = None
) -> dict[str, Any]:
    """Stress of the solid stoichiometry stored in a discharge checkpoint (one-way coupling).

    The checkpoint holds the mesh (input ordering) and the solid unknown
    ``w_s`` = logit of the stoichiometry ``x`` by input vertex, so the field is
    copied, not interpolated, onto the same mesh on any number of ranks. The
    eigenstrain of the active phase is ``Omega c_max (x - x_0) / 3 I``
    (NMC811's mean partial molar volume and maximum concentration,
    :mod:`tomofem.materials.mechanics`), ``x_0`` the stress-free
    stoichiometry; the collector face is clamped, the opposite face free or
    under the stack pressure.

    Returns
    -------
    dict
        Peak and volume-weighted 99th percentile of the von Mises and maximum
        principal stress [Pa], the extremes of the hydrostatic stress [Pa], the
        stoichiometry range and ``x_0``, CG iterations, unknowns and the VTX
        paths (when ``fields_dir`` is given).
    """
    import h5py

    from tomofem import tags
    from tomofem._fenics import MPI, dolfinx, ufl
    from tomofem.forms.elasticity import lithiation_strain
    from tomofem.io.checkpoint import dof_input_indices, read_mesh
    from tomofem.materials.mechanics import nmc811
    from tomofem.post.particle_stress import stress_fields, weighted_percentile, write_stress_vtx
    from tomofem.solvers.lithiation_stress import solve_lithiation_stress

    path = Path(path)
    dm = read_mesh(path, comm)
    with h5py.File(path, "r") as h5:
        if "fields/w_s" not in h5:
            raise ConfigError(
                f"{path}: no solid field 'w_s' (logit of the stoichiometry); give the "
                "checkpoint.h5 of a simulate run folder"
            )
        idx, w = h5["fields/w_s/input_index"][()], h5["fields/w_s/values"][()]
    active = int(tags.Phase.ACTIVE)
    nmc = nmc811()
    omega = float(nmc["Partial molar volume [m3.mol-1]"])  # type: ignore[arg-type]
    c_max = float(nmc["Maximum concentration [mol.m-3]"])  # type: ignore[arg-type]
    info: dict[str, float] = {}

    def eigenstrain(solid):
        V = dolfinx.fem.functionspace(solid.mesh, ("Lagrange", 1))
        want = dof_input_indices(V)
        pos = np.clip(np.searchsorted(idx, want), 0, max(len(idx) - 1, 0))
        found = idx[pos] == want if len(idx) else np.zeros(want.size, dtype=bool)
        needed = np.unique(V.dofmap.list[solid.cell_phase == active].ravel())
        if comm.allreduce(int((~found[needed]).sum()), op=MPI.SUM):
            raise ConfigError(
                f"{path}: the stored solid field misses vertices of the active phase; "
                "the checkpoint's mesh and field do not belong together"
            )
        x = dolfinx.fem.Function(V)
        x.x.array[found] = 1.0 / (1.0 + np.exp(-w[pos[found]]))
        dxa = solid.dx()(active)
        vol = comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(1.0 * dxa)))
        mean = comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(x * dxa))) / vol
        x0 = mean if cfg.stress_free_stoichiometry is None else cfg.stress_free_stoichiometry
        xa = x.x.array[needed]
        info.update(
            x_mean=mean,
            x_min=comm.allreduce(float(xa.min(initial=1.0)), op=MPI.MIN),
            x_max=comm.allreduce(float(xa.max(initial=0.0)), op=MPI.MAX),
            x_stress_free=x0,
        )
        return {active: lithiation_strain(omega, c_max * x, c_max * x0)}

    sol = solve_lithiation_stress(
        dm.mesh,
        dm.cell_tags,
        _mechanics_phases(cfg),
        eigenstrain,
        collector=tags.BoxFace[cfg.collector_face.upper()],
        stack_pressure=cfg.stack_pressure,
        degree=cfg.degree,
    )
    f = stress_fields(sol)
    Q = f["von_mises"].function_space
    msh = Q.mesh
    n = msh.topology.index_map(3).size_local
    # volume weight of each owned DG node of the active cells (cell volume / nodes per cell)
    cells = np.flatnonzero(sol.solid.cell_phase[:n] == active).astype(np.int32)
    dofs = Q.dofmap.list[cells]
    vol = dolfinx.fem.assemble_vector(
        dolfinx.fem.form(ufl.TestFunction(dolfinx.fem.functionspace(msh, ("DG", 0))) * ufl.dx)
    ).array
    weights = np.repeat(vol[cells] / dofs.shape[1], dofs.shape[1])
    out: dict[str, Any] = {"checkpoint": str(path), **info}
    for name in ("von_mises", "max_principal", "hydrostatic"):
        vals = f[name].x.array[dofs.ravel()]
        allv = comm.gather(vals, root=0)
        allw = comm.gather(weights, root=0)
        stats = None
        if comm.rank == 0:
            v, wt = np.concatenate(allv), np.concatenate(allw)
            stats = {
                "max": float(v.max()),
                "min": float(v.min()),
                "p99": weighted_percentile(v, wt, 0.99),
            }
        out[name] = comm.bcast(stats, root=0)
    out["iterations"] = sol.iterations
    out["unknowns"] = int(sol.u.function_space.dofmap.index_map.size_global * 3)
    if fields_dir is not None:
        out["vtx"] = [str(p) for p in write_stress_vtx(sol, fields_dir)]
    return out


def network(labels: Any, cfg: NetworkConfig, comm: Any = None) -> dict[str, Any]:
    """Pore-network model of one phase (rank 0: SNOW2 and OpenPNM are serial).

    Returns
    -------
    dict
        ``{"phase", "result": NetworkResult, "drainage": DrainageResult or None,
        "picture": arrays of the network picture}``.
    """
    from tomofem.errors import ConfigError

    transport = api("tomofem.homogenization.network", "network_transport", "network")
    spacing = np.asarray(labels.spacing, dtype=float)
    if not np.allclose(spacing, spacing[0], rtol=1e-6):
        raise ConfigError(
            f"network: SNOW2 needs cubic voxels, the image has {spacing.tolist()} um; "
            "resample the image to cubic voxels first"
        )
    phase = PHASE_INDEX[cfg.phase]
    im = labels.data == phase
    res, pn, ph = transport(
        im,
        float(spacing[0]) * 1e-6,  # um -> m
        [AXES[a] for a in cfg.axes],
        boundary_width=cfg.boundary_width,
        keep_network=True,
    )
    out: dict[str, Any] = {"phase": cfg.phase, "result": res, "drainage": None}
    internal = ~np.asarray(pn["pore.boundary"], dtype=bool) if "pore.boundary" in pn else None
    out["picture"] = {
        "coords": np.asarray(pn["pore.coords"]),
        "conns": np.asarray(pn["throat.conns"]),
        "pore_diameter": np.asarray(pn["pore.inscribed_diameter"]),
        "throat_diameter": np.asarray(pn["throat.inscribed_diameter"]),
        "internal": internal,
    }
    if cfg.drainage:
        drain = api("tomofem.homogenization.network", "drainage", "network")
        out["drainage"] = drain(
            pn,
            ph,
            AXES[cfg.axes[0]],
            surface_tension=cfg.surface_tension,
            contact_angle=cfg.contact_angle,
        )
    return out


def _quantities_network(net: Mapping[str, Any], dns: Mapping[str, Any]) -> list[Quantity]:
    """Rows of the network stage; beside the Stokes K of homogenize when it ran."""
    r = net["result"]
    rows = [
        Quantity(
            "network",
            "pores, throats",
            float(r.pores),
            "-",
            f"{r.throats} throats; median pore / throat diameter "
            f"{r.pore_diameter_percentiles[2] * 1e6:.3g} / "
            f"{r.throat_diameter_percentiles[2] * 1e6:.3g} um",
        )
    ]
    for ax_i, tau, k in zip(r.axes, r.tau, r.permeability, strict=True):
        ax = "xyz"[ax_i]
        rows.append(Quantity("network", f"tau_{ax} {net['phase']} (network)", tau, "-"))
        note = "SNOW2 + OpenPNM spheres-and-cylinders"
        d = dns.get(ax)
        if d is not None and d.k(ax_i) > 0:
            note += f"; Stokes DNS {d.k(ax_i):.3g} m2 (network / DNS {k / d.k(ax_i):.2g})"
        rows.append(Quantity("network", f"permeability_{ax} (network)", k, "m2", note))
    dr = net.get("drainage")
    if dr is not None:
        rows.append(
            Quantity(
                "network",
                "drainage breakthrough pressure",
                dr.breakthrough_pressure,
                "Pa",
                f"along {'xyz'[dr.axis]}, sigma {dr.surface_tension} N/m, "
                f"theta {dr.contact_angle} deg",
            )
        )
    return rows


def _quantities_mechanics(res: Mapping[str, Any]) -> list[Quantity]:
    rows = []
    for bc, r in res.items():
        C = np.asarray(r.stiffness) / 1e9
        rows.append(
            Quantity(
                "mechanics",
                f"C11 C22 C33 ({bc})",
                float(C[0, 0]),
                "GPa",
                f"C22 {C[1, 1]:.4g}, C33 {C[2, 2]:.4g} GPa",
            )
        )
        if r.engineering is not None:
            e = r.engineering
            rows.append(
                Quantity(
                    "mechanics",
                    f"E film ({bc})",
                    e["young_hill"] / 1e9,
                    "GPa",
                    "Hill average; E_x,y,z " + ", ".join(f"{v / 1e9:.4g}" for v in e["young"]),
                )
            )
            rows.append(Quantity("mechanics", f"nu film ({bc})", e["poisson_hill"], "-"))
            rows.append(Quantity("mechanics", f"K_dr ({bc})", e["drained_bulk"] / 1e9, "GPa"))
        if r.biot is not None:
            rows.append(
                Quantity(
                    "mechanics",
                    f"Biot alpha ({bc})",
                    r.biot,
                    "-",
                    f"K_s {r.solid_bulk / 1e9:.4g} GPa",
                )
            )
    if len(res) > 1:
        spread = api("tomofem.homogenization.elasticity", "bc_spread", "mechanics")(res)
        for bc, d in spread["spread"].items():
            rows.append(
                Quantity(
                    "mechanics",
                    f"BC spread {bc} vs {spread['reference']}",
                    d["stiffness"],
                    "-",
                    "||C_bc - C_ref|| / ||C_ref||"
                    + (f"; E film {d['young_hill']:+.1%}" if "young_hill" in d else ""),
                )
            )
    return rows


# --------------------------------------------------------------------------- chain


#: Keys another part of homogenize may add per axis (read with :func:`_extra` when present).
RECOMMENDED_KEYS = (
    "tau_recommended",
    "tau_error_discretisation",
    "tau_error_geometry",
    "recommended_reason",
)


def _extra(res: Mapping[str, Any], ax: str, key: str) -> Any:
    """Return the optional per-axis entry ``key`` of the homogenize results (None if absent).

    Looked for as ``res[key][ax]``, then in ``res["recommended"][ax]``, then on
    the FEM and voxel results of ``ax`` (attribute or mapping key), so the
    summary works with and without the recommendation fields.
    """
    val = res.get(key)
    if isinstance(val, Mapping):
        return val.get(ax)
    for where in ("recommended", "fem", "voxel"):
        per_axis = res.get(where)
        item = per_axis.get(ax) if isinstance(per_axis, Mapping) else None
        got = item.get(key) if isinstance(item, Mapping) else getattr(item, key, None)
        if got is not None:
            return got
    return None


def _number(v: Any) -> float | None:
    """``v`` as a float ("inf" strings included), None if it is not a number."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def recommended_tau(res: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Which tau to use per axis, with its error estimates where known.

    Returns
    -------
    dict
        ``{axis: {"tau", "error_discretisation", "error_geometry", "reason", "method"}}``:
        ``tau_recommended`` and the error keys when homogenize provides them,
        else the FEM value (conformal mesh: second order in h) or, without a
        mesh, the voxel value; errors are None when not estimated.
    """
    out: dict[str, dict[str, Any]] = {}
    axes = list(res.get("fem", {})) or list(res.get("voxel", {}))
    for ax in axes:
        fem, vox = res.get("fem", {}).get(ax), res.get("voxel", {}).get(ax)
        base, method = (fem, "FEM") if fem is not None else (vox, "voxel FVM")
        tau = _number(_extra(res, ax, "tau_recommended"))
        reason = _extra(res, ax, "recommended_reason")
        if tau is None:
            tau = float(base.tau)
        else:  # the estimate's own method (e.g. fem-p2) when it names one
            item = (res.get("recommended") or {}).get(ax)
            named = item.get("method") if isinstance(item, Mapping) else None
            method = str(named) if named else "estimate"
        if not reason:
            reason = (
                "FEM on the conformal mesh: its error falls as h^2; the voxel FVM is first order "
                "on the voxel staircase and serves as the independent check"
                if fem is not None
                else "voxel FVM (no mesh in this run)"
            )
        out[ax] = {
            "tau": tau,
            "error_discretisation": _number(_extra(res, ax, "tau_error_discretisation")),
            "error_geometry": _number(_extra(res, ax, "tau_error_geometry")),
            "reason": str(reason),
            "method": method,
        }
    return out


def _bc_spread(res: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{bc: {axis: tensor diagonal / mixed-BC k_eff - 1}}`` for the axes with a FEM k_eff."""
    out: dict[str, dict[str, float]] = {}
    mixed = {ax: r.k_eff for ax, r in res.get("fem", {}).items() if r.k_eff > 0}
    for bc, t in res.get("tensors", {}).items():
        out[bc] = {ax: float(t.array[AXES[ax], AXES[ax]] / k - 1.0) for ax, k in mixed.items()}
    return out


def _quantities_homogenize(res: dict[str, Any]) -> list[Quantity]:
    rows = []
    phase = res["phase"]
    for method, label in (("fem", "FEM"), ("voxel", "voxel FVM")):
        for ax, r in res.get(method, {}).items():
            note = f"{r.unknowns} unknowns"
            b = r.bounds or {}
            if b:
                note += f", k_eff {r.k_eff:.4g} in Wiener [{b['reuss']:.3g}, {b['voigt']:.3g}]"
            if not r.percolating:
                note = "does not percolate"
            rows.append(Quantity("homogenize", f"tau_{ax} {phase} ({label})", r.tau, "-", note))
    for ax, rec in recommended_tau(res).items():
        errs = [
            f"± {rec['error_' + what]:.3g} ({what})"
            for what in ("discretisation", "geometry")
            if rec["error_" + what] is not None
        ]
        note = f"use this: {rec['method']}" + (", " + ", ".join(errs) if errs else "")
        rows.append(Quantity("homogenize", f"tau_{ax} {phase} recommended", rec["tau"], "-", note))
    for ax, r in res.get("permeability", {}).items():
        note = (
            f"Stokes P2-P1, pressure drop, symmetry sides; Kozeny-Carman "
            f"{r.kozeny_carman[0]:.3g}, hydraulic tortuosity {r.hydraulic_tortuosity[0]:.3g}"
        )
        rows.append(Quantity("homogenize", f"permeability_{ax}", r.k(AXES[ax]), "m2", note))
    spreads = _bc_spread(res)
    for bc, t in res.get("tensors", {}).items():
        ev = ", ".join(f"{v:.4g}" for v in t.eigenvalues)
        note = f"FEM apparent tensor, {bc} BC on every face; eigenvalues {ev}"
        rows.append(Quantity("homogenize", f"K_eff {bc} max eig", max(t.eigenvalues), "-", note))
        for ax, d in spreads.get(bc, {}).items():
            verdict = (
                f"above {BC_SPREAD_TOL:.0%}: not an RVE along {ax}"
                if abs(d) > BC_SPREAD_TOL
                else f"within {BC_SPREAD_TOL:.0%}"
            )
            note = f"{bc}-BC K_{ax}{ax} vs mixed-BC k_eff: {d:+.1%}, {verdict}"
            rows.append(Quantity("homogenize", f"BC spread {ax}", d, "-", note))
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


def _notes_homogenize(res: Mapping[str, Any]) -> list[str]:
    """How to read the homogenize rows: which tau to use, what the BC spread says."""
    notes = []
    recs = recommended_tau(res)
    if recs:
        picks = ", ".join(f"tau_{ax} = {r['tau']:.4g}" for ax, r in recs.items())
        reasons = sorted({r["reason"] for r in recs.values()})
        text = f"Which tau to use: the 'recommended' rows ({picks}): {'; '.join(reasons)}."
        gaps = []
        for ax, r in res.get("fem", {}).items():
            v = res.get("voxel", {}).get(ax)
            if v is not None and math.isfinite(r.tau) and math.isfinite(v.tau) and r.tau > 0:
                gaps.append(f"{ax} {v.tau / r.tau - 1:+.1%}")
        if gaps:
            text += (
                f" Voxel FVM vs FEM: {', '.join(gaps)} (discretisation and the mesh's smoothing "
                "of the voxel surface together)."
            )
        notes.append(text)
    for bc, per_axis in _bc_spread(res).items():
        if not per_axis:
            continue
        spread = ", ".join(f"{ax} {d:+.1%}" for ax, d in per_axis.items())
        bad = [ax for ax, d in per_axis.items() if abs(d) > BC_SPREAD_TOL]
        text = (
            f"Boundary-condition spread (the {bc}-BC tensor diagonal against the mixed-BC k_eff "
            f"of the same box): {spread}."
        )
        if bad:
            text += (
                f" Above {BC_SPREAD_TOL:.0%} along {', '.join(bad)}: the volume is not a "
                "representative volume element (RVE) there, so tau depends on the boundary "
                "conditions and is an apparent value of this sample; image a larger volume or "
                "run an RVE study (homogenize.rve_sizes)."
            )
        else:
            text += f" Within {BC_SPREAD_TOL:.0%} on every axis: the box behaves as an RVE."
        notes.append(text)
    return notes


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

    Notes
    -----
    With a folder, the run folder is brought up to date after every stage:
    that stage's pictures, the results so far and ``results.json`` with
    status ``running`` (the final status is the caller's to write, e.g.
    :meth:`~tomofem.io.runfolder.RunFolder.fail` on an error), so a run
    killed outright still leaves what it finished. An error or interrupt
    (Ctrl-C; SIGTERM too, while no other handler is installed) marks its
    stage ``failed`` or ``interrupted`` with the message and propagates.
    """
    res = PipelineResult()
    res.outputs["config"] = config
    timer = folder.stage if folder is not None else _null_stage
    wanted = list(config.stages)
    with _sigterm_interrupts():
        with timer("image"):  # read once, on rank 0: only the labels travel to the other ranks
            volume, truth = on_root(comm, load_image, config.image, share=False) or (None, None)
        res.outputs.update(volume=volume, truth=truth)
        if volume is not None:
            res.results["image"] = volume.metadata()
        done: set[str] = set()
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
                res.stages.append(
                    StageRecord(name, "unavailable", time.perf_counter() - t0, str(exc))
                )
                log.warning("%s", exc)
                if folder is not None:
                    _update_folder(res, folder, config, ())
                continue
            except BaseException as exc:
                from tomofem.io.runfolder import error_record

                rec = error_record(exc, name)
                why = rec["message"] if rec["status"] == "interrupted" else (
                    f"{rec['type']}: {rec['message']}"
                )  # fmt: skip
                res.stages.append(StageRecord(name, rec["status"], time.perf_counter() - t0, why))
                if folder is not None:
                    _update_folder(res, folder, config, (), status=None)
                raise
            res.stages.append(StageRecord(name, "done", time.perf_counter() - t0))
            done.add(name)
            log.info("stage %s done in %.1f s", name, time.perf_counter() - t0)
            if folder is not None:
                extra = ("voxels",) if name == "segment" and "mesh" not in wanted else ()
                _update_folder(res, folder, config, (name, *extra))
            if progress is not None:
                progress(i + 1, len(wanted), stage=name)
    if folder is not None:
        _update_folder(res, folder, config, (), status=final_status(res))
    return res


def _update_folder(
    res: PipelineResult,
    folder: Any,
    config: RunConfig,
    stages: Collection[str],
    status: str | None = "running",
) -> None:
    """Bring the run folder up to date with ``res``.

    Pictures of ``stages`` (if ``config.output.pictures``), every result, the
    summary, stage records and notes, and ``results.json`` with ``status``
    (None: not written; the caller writes it).
    """
    if stages and config.output.pictures:
        t0 = time.perf_counter()
        new = pictures(res, folder, stages)
        pics = res.results.setdefault("pictures", [])
        pics.extend(n for n in new if n not in pics)
        spent = folder.wall_times.get("pictures", 0.0) + time.perf_counter() - t0
        folder.wall_times["pictures"] = round(spent, 4)
    for key, val in res.results.items():
        folder.add_result(key, val)
    folder.meta["summary"] = [vars(q) for q in res.quantities]
    folder.meta["stages"] = [vars(s) for s in res.stages]
    folder.meta["notes"] = {k: list(v) for k, v in res.notes.items()}
    if status is not None:
        folder.write_results(status=status)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While the body runs, SIGTERM raises ``KeyboardInterrupt("SIGTERM")`` like Ctrl-C does.

    Batch systems send SIGTERM before a job's time limit; by default it ends
    the process without a trace, so a run killed during meshing would leave
    no record. Only done in the main thread and only while SIGTERM has its
    default action (a handler someone else installed is left alone); the
    simulation's own handler (:class:`tomofem.mpi.StopRequest`) takes over
    inside its time loop and restores this one after it.
    """
    import signal
    import threading

    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def how_to_continue(path: Any) -> str:
    """Say what to run to continue the interrupted run in folder ``path`` (one sentence)."""
    from pathlib import Path

    from tomofem.io.runfolder import CHECKPOINT

    if (Path(path) / CHECKPOINT).exists():
        return f"continue with: tomofem simulate --resume {path}"
    return (
        f"nothing was checkpointed yet; start it again with: tomofem simulate --resume {path} "
        "(or the same command again: an interrupted run folder is replaced without --force)"
    )


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
        vol = out.get("volume")
        grey = _grey_source(vol, config)
        made = mesh(out["labels"], config.mesh, comm, grey)
        out["tetmesh"], out["mesh_report"] = made.tetmesh, made.report
        if _on_root(comm):
            rep, route = made.report, made.route
            extra = {"distributed": made.stats} if made.stats is not None else {}
            res.results["mesh"] = {"route": route, **_plain(rep), **extra}
            res.quantities.append(Quantity("mesh", "tetrahedra", rep.num_cells, "-", route))
            res.quantities.append(Quantity("mesh", "min dihedral", rep.min_dihedral_deg, "deg"))
        out["dmesh"] = made.dmesh if made.dmesh is not None else distribute(made.tetmesh, comm)
        if made.dmesh is not None and config.output.pictures:
            from tomofem.meshing.distributed_checks import phase_surfaces

            out["mesh_surfaces"] = phase_surfaces(made.dmesh)
        if folder is not None and config.output.fields:
            write_mesh(out["dmesh"], folder.file("mesh.xdmf"))
    elif name == "homogenize":
        vol = out.get("volume")
        grey = _grey_source(vol, config)
        h = homogenize(out["labels"], config.homogenize, out.get("dmesh"), comm, config.mesh, grey)
        out["homogenize"] = h
        res.results["homogenize"] = {
            "phase": h["phase"],
            "fem": {ax: r.to_dict() for ax, r in h["fem"].items()},
            "fem_other_degree": {ax: r.to_dict() for ax, r in h.get("fem_other", {}).items()},
            "geometry_variants": h.get("variants", {}),
            "recommended": h.get("recommended", {}),
            "voxel": {ax: r.to_dict() for ax, r in h["voxel"].items()},
            "tensors": {bc: t.to_dict() for bc, t in h["tensors"].items()},
            "permeability": {ax: r.to_dict() for ax, r in h.get("permeability", {}).items()},
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
        res.notes["homogenize"] = _notes_homogenize(h)
        _velocity_outputs(h, config, comm, folder)
    elif name == "simulate":
        sim_dir = folder.file("simulate") if folder is not None else None
        length_scale = 1e-6  # voxel sizes are in um
        sim = simulate(out["dmesh"], config.simulate, sim_dir, length_scale=length_scale)
        _record_simulation(res, sim, config.simulate)
    elif name == "mechanics":
        m = mechanics(out["dmesh"], config.mechanics)
        out["mechanics"] = m
        res.results["mechanics"] = {
            "stiffness": {bc: r.to_dict() for bc, r in m.items()},
            "units": {"stiffness": "Pa (Voigt, engineering shear)", "moduli": "Pa"},
        }
        if len(m) > 1:
            spread = api("tomofem.homogenization.elasticity", "bc_spread", "mechanics")(m)
            res.results["mechanics"]["bc_spread"] = spread
        res.quantities.extend(_quantities_mechanics(m))
        if config.mechanics.checkpoint:
            fields_dir = folder.file("mechanics") if folder is not None else None
            ls = lithiation_stress_from_checkpoint(
                config.mechanics.checkpoint, config.mechanics, comm, fields_dir
            )
            res.results["mechanics"]["lithiation_stress"] = ls
            for key, label in (("von_mises", "von Mises"), ("max_principal", "max principal")):
                res.quantities.append(
                    Quantity(
                        "mechanics",
                        f"lithiation stress, {label} p99",
                        ls[key]["p99"] / 1e6,
                        "MPa",
                        f"peak {ls[key]['max'] / 1e6:.4g} MPa; "
                        f"x {ls['x_min']:.3f}-{ls['x_max']:.3f}",
                    )
                )
    elif name == "network":
        net = on_root(comm, network, out["labels"], config.network)
        out["network"] = net
        r = net["result"]
        res.results["network"] = {
            "phase": net["phase"],
            **r.to_dict(),
            "drainage": net["drainage"].to_dict() if net["drainage"] is not None else None,
            "units": {
                "permeability": "m2",
                "diameters": "m",
                "capillary_pressure": "Pa",
                "tau": "-",
            },
        }
        dns = out.get("homogenize", {}).get("permeability", {})
        res.quantities.extend(_quantities_network(net, dns))


def _velocity_outputs(h: dict[str, Any], config: RunConfig, comm: Any, folder: Any) -> None:
    """Velocity fields of the permeability solves: VTX files and the mid-plane samples (collective).

    Each axis's field goes to ``velocity_<axis>.bp`` (ParaView, ADIOS2 VTX);
    the first axis is sampled on its mid-plane for velocity.png.
    """
    fields = h.pop("velocity", None) or {}
    if not fields:
        return
    from tomofem._fenics import MPI, dolfinx

    if folder is not None and config.output.fields:
        for ax, uh in fields.items():
            with dolfinx.io.VTXWriter(
                uh.function_space.mesh.comm, str(folder.file(f"velocity_{ax}.bp")), [uh]
            ) as vtx:
                vtx.write(0.0)
    if config.output.pictures:
        sample = api("tomofem.homogenization.permeability", "sample_plane", "homogenize")
        ax = next(iter(fields))
        normal = (AXES[ax] + 1) % 3  # a plane that contains the flow direction
        vals, extent = sample(fields[ax], normal)
        x = fields[ax].function_space.mesh.geometry.x[:, normal]
        lo = comm.allreduce(float(x.min(initial=np.inf)), op=MPI.MIN) if comm else x.min()
        hi = comm.allreduce(float(x.max(initial=-np.inf)), op=MPI.MAX) if comm else x.max()
        h["velocity_slice"] = {
            "axis": ax, "normal": normal, "values": vals, "extent": extent, "mid": 0.5 * (lo + hi)
        }  # fmt: skip


def cell_capacity_mAh(sim: Any) -> float:
    """Theoretical capacity of the cell's active material [mAh]: what 1C passes in one hour."""
    return float(sim.one_c_current_A) * 1e3


def stop_description(sim: Any, cfg: SimulateConfig | None = None) -> tuple[str, bool]:
    """Why the simulation ended, and whether that was before its protocol's natural end.

    Returns
    -------
    reason, early
        ``early`` is False when the run ended at a cut-off voltage or taper
        current, True for a duration (``simulate.t_end``), a signal, the
        step-size floor, ``max_steps`` or exhausted capacity.
    """
    stop = str(sim.stop_reason)
    if stop != "protocol complete":
        return stop.split("; ")[0], True
    ends = list(getattr(sim, "step_ends", []) or [])
    last = ends[-1].split(": ", 1)[-1] if ends else stop
    if last.startswith(("cut-off voltage", "taper current")):
        return last, False
    if last.startswith("duration") and cfg is not None:
        limit = cfg.v_min if cfg.mode == "discharge" else cfg.v_max
        return f"{last} (simulate.t_end) reached before the {limit:g} V cut-off", True
    return last, True


def _record_simulation(res: PipelineResult, sim: Any, cfg: SimulateConfig | None = None) -> None:
    res.outputs["simulate"] = sim
    res.results["simulate"] = {
        k: v for k, v in _plain(sim).items() if k not in ("series", "j_histogram")
    }
    s = sim.series
    capacity = cell_capacity_mAh(sim)
    charge = float(sim.capacity_mAh)
    discharge = cfg is None or cfg.mode == "discharge"
    delivered = charge if discharge else -charge
    name = "charge delivered" if discharge else "charge stored"
    share = 100.0 * delivered / capacity if capacity > 0 else float("nan")
    rate = f"at {cfg.c_rate:g}C, " if cfg is not None else ""
    note = f"{rate}{share:.1f} % of the cell capacity"
    res.quantities.append(Quantity("simulate", name, delivered, "mAh", note))
    res.quantities.append(
        Quantity(
            "simulate",
            "cell capacity",
            capacity,
            "mAh",
            f"theoretical, of the active material; 1C = {sim.one_c_current_A:.4g} A",
        )
    )
    reason, early = stop_description(sim, cfg)
    res.quantities.append(Quantity("simulate", "final voltage", s["voltage"][-1], "V", reason))
    res.quantities.append(Quantity("simulate", "time steps", sim.steps_accepted, "-"))
    text = (
        f"The {'discharge' if discharge else 'charge'} passed {delivered:.4g} mAh, "
        f"{share:.1f} % of the cell capacity ({capacity:.4g} mAh, the theoretical capacity of "
        f"the active material); it ended on: {reason}"
    )
    if early:
        text += " (stopped early: the number is not the cell's usable capacity at this rate)"
    res.notes["simulate"] = [text + "."]


def final_status(res: PipelineResult) -> str:
    """Return the ``results.json`` status of a finished run.

    ``interrupted`` or ``stopped`` if the simulation stopped on a signal or at
    the step-size floor, else ``res.status``.
    """
    stop = str(res.results.get("simulate", {}).get("stop_reason", ""))
    if stop.startswith("interrupted"):
        return "interrupted"
    if stop.startswith("step below"):
        return "stopped"
    return res.status


def resume(run_dir: Any, comm: Any = None, folder: Any = None) -> PipelineResult:
    """Continue a run folder: its simulation from the last checkpoint, or a run that never got one.

    Everything comes from the folder: the resolved ``config.toml`` and
    ``simulate/checkpoint.h5`` (which holds the mesh, the fields and the loop
    state), so neither the image nor the mesher is needed. On the same number
    of ranks the continuation is bitwise identical to an uninterrupted run.
    A run that was interrupted (or killed: status ``running``) before its
    simulation wrote a checkpoint runs all its stages again, from the
    folder's ``config.toml``, into ``folder`` (when given).

    Parameters
    ----------
    folder
        The :class:`~tomofem.io.runfolder.RunFolder` of ``run_dir``, opened
        (:meth:`~tomofem.io.runfolder.RunFolder.open`): the resumed results,
        summary and pictures are recorded into it (the caller writes the final
        ``results.json``). None: only the result is returned.

    Raises
    ------
    RunFolderError
        If ``run_dir`` is not a run folder, or holds no checkpoint and its run
        was not interrupted.
    """
    from pathlib import Path

    from tomofem._fenics import MPI
    from tomofem.config import load_config
    from tomofem.errors import RunFolderError
    from tomofem.io.checkpoint import read_mesh
    from tomofem.io.runfolder import CHECKPOINT, _status

    comm = comm if comm is not None else MPI.COMM_WORLD
    path = Path(run_dir)
    cfg = load_config(path / "config.toml")
    ckpt = path / CHECKPOINT
    if not ckpt.exists():
        status = folder.previous_status if folder is not None else _status(path)
        if status not in ("interrupted", "running", ""):
            raise RunFolderError(
                f"{path} holds no simulation checkpoint ({ckpt}) and its run is {status}, not "
                "interrupted: nothing to resume; start a new run (--force replaces the folder)"
            )
        log.info("%s: no simulation checkpoint; running the stages again from config.toml", path)
        return run(cfg, folder, comm)
    dmesh = read_mesh(ckpt, comm)
    res = PipelineResult()
    res.outputs["config"] = cfg
    if folder is not None:  # the earlier stages' rows and pictures stay in the summary
        res.quantities = [
            Quantity(**q) for q in folder.meta.get("summary", []) if q.get("stage") != "simulate"
        ]
        res.stages = [
            StageRecord(**r) for r in folder.meta.get("stages", []) if r.get("name") != "simulate"
        ]
        res.notes = {k: list(v) for k, v in folder.meta.get("notes", {}).items()}
        pics = folder.results.get("pictures", {})
        res.results["pictures"] = list(pics.get("value", []) if isinstance(pics, dict) else pics)
    timer = folder.stage if folder is not None else _null_stage
    t0 = time.perf_counter()
    with _sigterm_interrupts(), timer("simulate"):
        sim = simulate(dmesh, cfg.simulate, path / "simulate", resume_from=ckpt)
    res.stages.append(StageRecord("simulate", "done", time.perf_counter() - t0, "resumed"))
    _record_simulation(res, sim, cfg.simulate)
    if folder is not None:
        _update_folder(res, folder, cfg, ("simulate",), status=None)
    return res


def write_mesh(dmesh: Any, path: Any) -> None:
    """Write the distributed mesh with its cell and facet tags as XDMF (ParaView, DOLFINx)."""
    from tomofem._fenics import dolfinx

    with dolfinx.io.XDMFFile(dmesh.mesh.comm, str(path), "w") as xdmf:
        xdmf.write_mesh(dmesh.mesh)
        dmesh.mesh.topology.create_connectivity(2, 3)
        xdmf.write_meshtags(dmesh.cell_tags, dmesh.mesh.geometry)
        xdmf.write_meshtags(dmesh.facet_tags, dmesh.mesh.geometry)


def pictures(res: PipelineResult, folder: Any, stages: Collection[str] | None = None) -> list[str]:
    """Write the run's PNGs (rank 0): slices, mesh render, tortuosity bars, voltage curve, steps.

    A picture that fails (e.g. no OpenGL for pyvista) is logged and skipped:
    pictures never cost a run its numbers.

    Parameters
    ----------
    stages
        Draw only the pictures of these stages (``segment``: slices.png,
        ``voxels``: voxels.png, ``mesh``, ``homogenize``, ``simulate``); None:
        every picture the results allow. :func:`run` calls it after each stage
        and :func:`resume` after the simulation, so the pictures always show
        the results in the folder.
    """
    if folder.rank != 0:
        return []
    from tomofem.viz import plots

    out, written = res.outputs, []
    cfg = out.get("config")

    def want(stage: str) -> bool:
        return stages is None or stage in stages

    def attempt(name: str, func: Callable[[], Any]) -> None:
        try:
            func()
            written.append(name)
        except Exception as exc:  # a picture must not cost the numbers
            log.warning("picture %s not written: %s", name, exc)

    lab = out.get("labels")
    unit = plots.length_unit(lab.spacing if lab is not None else None)[1]
    if want("segment") and lab is not None:
        vol = out.get("volume")
        label_input = (vol is not None and vol.label_names is not None) or (
            res.results.get("segment", {}).get("method") == "labels"
        )
        ims = {}
        if vol is not None and not label_input:  # a label image would only repeat the labels
            ims["tomogram"] = vol.data
        ims["segmented" if not label_input else "labels"] = lab.data
        if out.get("truth") is not None:
            ims["ground truth"] = out["truth"]
        attempt(
            "slices.png",
            lambda: plots.plot_slices(
                ims,
                folder.file("slices.png"),
                spacing=lab.spacing,
                phase_names=lab.label_names,
                label_panels=[k for k in ims if k != "tomogram"],
            ),
        )
    tm = out.get("tetmesh")
    if want("mesh") and tm is not None:
        title = f"conformal tetrahedral mesh: {tm.num_cells:,} cells, {len(tm.points):,} vertices"
        names = dict(tm.phase_names or {})  # the slices' names, so both pictures agree
        if lab is not None and lab.label_names:
            from tomofem import tags

            names.update({tags.phase_id(i): n for i, n in enumerate(lab.label_names)})
        attempt(
            "mesh.png",
            lambda: plots.render_mesh(
                tm.points,
                tm.cells,
                tm.cell_tags,
                folder.file("mesh.png"),
                title=title,
                unit=unit,
                phase_names=names,
            ),
        )
    surf = out.get("mesh_surfaces")
    rep = out.get("mesh_report")
    if want("mesh") and tm is None and surf is not None and rep is not None:
        title = (
            f"conformal tetrahedral mesh (meshed on every rank): {rep.num_cells:,} cells, "
            f"{rep.num_vertices:,} vertices"
        )
        names = {}
        if lab is not None and lab.label_names:
            from tomofem import tags

            names = {tags.phase_id(i): n for i, n in enumerate(lab.label_names)}
        attempt(
            "mesh.png",
            lambda: plots.render_surfaces(
                surf, folder.file("mesh.png"), title=title, unit=unit, phase_names=names
            ),
        )
    if want("voxels") and tm is None and surf is None and lab is not None:
        attempt(
            "voxels.png",
            lambda: plots.render_voxels(lab.data, folder.file("voxels.png"), lab.spacing),
        )
    if want("homogenize") and "homogenize" in out:
        attempt("tortuosity.png", lambda: _tortuosity_picture(out["homogenize"], folder))
        rve = out["homogenize"].get("rve")
        if rve is not None:
            attempt(
                "rve.png",
                lambda: plots.plot_rve(
                    [s.edge for s in rve.sizes],
                    {f"voxel tau_{'xyz'[rve.axis]}": [s.taus for s in rve.sizes]},
                    folder.file("rve.png"),
                ),
            )
    if want("homogenize") and "homogenize" in out and out["homogenize"].get("velocity_slice"):
        attempt("velocity.png", lambda: _velocity_picture(out["homogenize"], folder))
    if want("network") and "network" in out:
        from tomofem.viz import flow as flow_plots

        net = out["network"]
        pic = net["picture"]
        r = net["result"]
        attempt(
            "network.png",
            lambda: flow_plots.plot_network(
                pic["coords"],
                pic["conns"],
                pic["pore_diameter"],
                pic["throat_diameter"],
                folder.file("network.png"),
                internal=pic["internal"],
                title=f"{net['phase']} network (SNOW2): tau "
                + ", ".join(f"{'xyz'[a]} {t:.3g}" for a, t in zip(r.axes, r.tau, strict=True)),
            ),
        )
        dr = net.get("drainage")
        if dr is not None:
            attempt(
                "drainage.png",
                lambda: flow_plots.plot_drainage(
                    dr.capillary_pressure,
                    dr.saturation,
                    folder.file("drainage.png"),
                    breakthrough=dr.breakthrough_pressure,
                    title=f"network drainage along {'xyz'[dr.axis]}: Young-Laplace throat entry,\n"
                    f"sigma {dr.surface_tension:g} N/m, contact angle {dr.contact_angle:g} deg",
                ),
            )
    if want("simulate") and "simulate" in out:
        scfg = cfg.simulate if cfg is not None else None
        attempt("voltage.png", lambda: _voltage_picture(out["simulate"], scfg, folder))
        sim = out["simulate"]
        attempt(
            "steps.png",
            lambda: plots.plot_steps(
                sim.series["time"],
                sim.series["dt"],
                sim.series["newton_iterations"],
                folder.file("steps.png"),
                title=f"{sim.steps_accepted} accepted time steps, {sim.steps_rejected} rejected",
            ),
        )
    return written


def _tortuosity_picture(h: Mapping[str, Any], folder: Any) -> Any:
    """tortuosity.png: FEM and voxel tau per axis, bounds, recommended values and their errors."""
    from tomofem.viz import plots

    taus = {
        "FEM (conformal mesh)" if m == "fem" else "voxel FVM": {ax: r.tau for ax, r in h[m].items()}
        for m in ("fem", "voxel")
        if h.get(m)
    }
    bounds: dict[str, dict[str, tuple[float, float]]] = {}
    source = h.get("fem") or h.get("voxel") or {}
    for ax, r in source.items():
        b, eps = r.bounds or {}, r.porosity
        if b.get("voigt"):
            hi = eps / b["reuss"] if b.get("reuss") else math.inf
            bounds.setdefault("Wiener", {})[ax] = (eps / b["voigt"], hi)
        if b.get("hs_upper"):
            hi = eps / b["hs_lower"] if b.get("hs_lower") else math.inf
            bounds.setdefault("Hashin-Shtrikman", {})[ax] = (eps / b["hs_upper"], hi)
    recs = recommended_tau(h)
    errors = {}
    kinds = set()
    for ax, rec in recs.items():
        parts = [(k, rec[f"error_{k}"]) for k in ("discretisation", "geometry")]
        known = [(k, abs(e)) for k, e in parts if e is not None and math.isfinite(e)]
        if known:
            errors[ax] = sum(e for _, e in known)
            kinds.update(k for k, _ in known)
    return plots.plot_tortuosity(
        taus,
        folder.file("tortuosity.png"),
        title=f"{h['phase']} phase: tortuosity factor per axis (mixed BC)",
        bounds=bounds,
        recommended={ax: r["tau"] for ax, r in recs.items()},
        recommended_errors=errors,
        error_label=f"error estimate ({' + '.join(sorted(kinds))})" if kinds else "",
    )


def _velocity_picture(h: Mapping[str, Any], folder: Any) -> Any:
    """velocity.png: speed over the superficial mean on a mid-plane, with streamlines."""
    from tomofem.viz import flow as flow_plots

    sl = h["velocity_slice"]
    vals, ax, normal = sl["values"], sl["axis"], sl["normal"]
    a, b = [k for k in range(3) if k != normal]
    flow = vals[..., AXES[ax]]
    mean = np.nanmean(np.where(np.isnan(flow), 0.0, flow))  # superficial: solid counts as 0
    scale = abs(mean) if mean else 1.0
    speed = np.linalg.norm(vals, axis=-1) / scale
    r = h["permeability"][ax]
    return flow_plots.plot_velocity_slice(
        speed,
        (vals[..., a] / scale, vals[..., b] / scale),
        sl["extent"],
        folder.file("velocity.png"),
        labels=("xyz"[a], "xyz"[b]),
        title=(
            f"Stokes flow along {ax} (pressure drop), plane {'xyz'[normal]} = {sl['mid']:.3g} µm;"
            f" K_{ax}{ax} = {r.k(AXES[ax]):.3g} m²"
        ),
        colour_label=f"|u| / <u_{ax}> on this plane [-]",
    )


def _voltage_picture(sim: Any, cfg: SimulateConfig | None, folder: Any) -> Any:
    """voltage.png: voltage against depth of discharge, with C-rate, cut-off and early stop."""
    from tomofem.viz import plots

    s = sim.series
    capacity = cell_capacity_mAh(sim)
    x = 100.0 * np.abs(np.asarray(s["capacity"], float)) / capacity
    if cfg is not None:
        label = f"{cfg.c_rate:g}C {cfg.mode}"
        cutoff = cfg.v_min if cfg.mode == "discharge" else cfg.v_max
    else:
        label, cutoff = "simulation", None
    reason, early = stop_description(sim, cfg)
    what = "depth of discharge" if cfg is None or cfg.mode == "discharge" else "charge passed"
    return plots.plot_voltage(
        {label: (x, s["voltage"])},
        folder.file("voltage.png"),
        xlabel=f"{what} [% of the cell capacity, {capacity:.3g} mAh]",
        cutoff=cutoff,
        title=f"half cell against Li metal, {label}",
        stops={label: reason} if early else None,
    )
