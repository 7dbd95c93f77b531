"""Run configuration: TOML files and command-line overrides -> frozen dataclasses.

A run is described by one :class:`RunConfig` with a section per stage
(``[image]``, ``[segment]``, ``[mesh]``, ``[homogenize]``, ``[simulate]``,
``[output]``). The same dataclasses are what :mod:`tomofem.pipeline` takes, so
a notebook builds them directly and the command line builds them from a file.

Validation collects *every* problem before any work starts: unknown keys (with
a "did you mean" hint), wrong types, out-of-range values and inconsistent
combinations, each reported with its key path (``simulate.c_rate: must be > 0,
got -1``), all at once in one :class:`~tomofem.errors.ConfigError`.

The machinery is generic (:func:`from_mapping` works on any frozen dataclass
with type annotations): a field's allowed range comes from its metadata
(``ge``, ``gt``, ``le``, ``lt``, ``choices``, ``min_len``) and cross-field
rules from an optional ``problems()`` method that returns messages.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import os
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tomofem.errors import ConfigError, TomofemError
from tomofem.image.io import HDF5_SUFFIXES, RAW_SUFFIXES
from tomofem.meshing.options import MeshOptions
from tomofem.solvers.timestepping import StepControl

_MISSING = object()


def _f(default: Any, doc: str, **limits: Any) -> Any:
    """Dataclass field with an immutable default, a one-line doc and optional range limits."""
    return field(default=default, metadata={"doc": doc, **limits})


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class ImageConfig:
    """Where the voxels come from.

    ``source = "synthetic"`` builds a seeded structure (no files needed);
    any other value is a path to a label or grey-scale image (TIFF, ``.npy``,
    raw, HDF5) read by :mod:`tomofem.image`.
    """

    source: str = _f(
        "synthetic",
        "'synthetic' or a path to an image file (in a config file: relative to the file's folder)",
        path=True,
        keywords=("synthetic",),
    )
    kind: Literal["spheres", "packing", "calendered", "lattice"] = _f(
        "spheres", "synthetic structure: overlapping spheres, RSA packing, calendered, lattice"
    )
    shape: tuple[int, int, int] = _f((40, 40, 40), "synthetic image size [voxels]", ge=4)
    porosity: float = _f(0.45, "target pore fraction of a synthetic image [-]", gt=0.0, lt=1.0)
    radius: float = _f(6.0, "particle radius of a synthetic image [voxel_size units]", gt=0.0)
    aspect_ratio: float = _f(0.6, "calendered: through-plane / in-plane semi-axis [-]", gt=0.0)
    binder_fraction: float = _f(
        0.0, "synthetic: volume fraction of a CBD-like third phase [-]", ge=0.0, lt=1.0
    )
    seed: int = _f(0, "random seed of the synthetic structure and tomogram noise", ge=0)
    voxel_size: tuple[float, float, float] = _f((1.0, 1.0, 1.0), "voxel edge per axis [um]", gt=0.0)
    crop_start: tuple[int, int, int] = _f((0, 0, 0), "first voxel of the crop [voxels]", ge=0)
    crop_size: tuple[int, int, int] | None = _f(None, "crop edge per axis [voxels]", ge=4)
    tomogram: bool = _f(True, "synthetic: blur and add noise, so segmentation has real work to do")
    noise: float = _f(0.08, "synthetic tomogram: Gaussian noise std [grey/contrast]", ge=0.0)
    blur: float = _f(0.8, "synthetic tomogram: partial-volume blur sigma [voxels]", ge=0.0)
    raw_shape: tuple[int, int, int] | None = _f(
        None, "raw binary files (.raw/.bin/.vol/.dat): image size [voxels, C order]", ge=1
    )
    raw_dtype: str = _f("uint8", "raw binary files: numpy dtype, e.g. 'uint16' or '<f4'")
    dataset: str | None = _f(
        None,
        "HDF5 files (.h5/.hdf5/.hdf): path of the dataset to read, e.g. 'volume' or "
        "'scan/labels' (needed when the file holds several; list them with h5ls)",
    )

    def problems(self) -> list[str]:
        """Cross-field checks."""
        out = []
        if self.source != "synthetic" and not Path(self.source).expanduser().exists():
            out.append(
                f"source: file {self.source!r} does not exist; give an existing image path "
                "or 'synthetic' (a relative path in a config file is taken from the file's "
                "folder, one on the command line from the working directory)"
            )
        if Path(self.source).suffix.lower() in RAW_SUFFIXES:
            if self.raw_shape is None:
                out.append(
                    f"raw_shape: {self.source!r} is raw binary, which does not store its "
                    "size; give image.raw_shape = [nz, ny, nx] (and image.raw_dtype)"
                )
            try:
                np.dtype(self.raw_dtype)
            except TypeError:
                out.append(f"raw_dtype: {self.raw_dtype!r} is not a numpy dtype, e.g. 'uint16'")
        if self.dataset is not None and Path(self.source).suffix.lower() not in HDF5_SUFFIXES:
            out.append(
                f"dataset: {self.dataset!r} is set but {self.source!r} is not an HDF5 file "
                f"({', '.join(HDF5_SUFFIXES)}); remove image.dataset or point image.source "
                "at the HDF5 file"
            )
        if self.source == "synthetic" and 2 * self.radius >= min(self.shape):
            out.append(
                f"radius: particles of diameter {2 * self.radius} do not fit shape "
                f"{list(self.shape)}; use a larger shape or a smaller radius"
            )
        return out


@dataclass(frozen=True)
class SegmentConfig:
    """How grey values become phase labels.

    A label image (``method = "labels"``) is never mapped by guesswork: its
    stored values must be the ``label_values`` given (one per phase, in tag
    order pore, active, CBD), or, without them, exactly ``phases`` distinct
    values, taken in ascending order. The shared electrode stores 0 = pore,
    85 = NMC, 170 = CBD: ``phases = 3``, ``label_values = [0, 85, 170]``.
    """

    method: Literal["otsu", "multiotsu", "gmm", "threshold", "labels"] = _f(
        "otsu",
        "otsu / multiotsu (3+ phases) / gmm (soft, gives posteriors) / threshold / labels "
        "(image already segmented)",
    )
    phases: int = _f(
        2,
        "number of phases to find (labels: the number of phases the image stores, 3 for "
        "pore/NMC/CBD)",
        ge=2,
        le=9,
    )
    threshold: float | None = _f(None, "grey value for method='threshold'")
    label_values: list[int] = field(
        default_factory=list,
        metadata={
            "doc": "labels: stored value of each phase in tag order (pore, active, CBD), e.g. "
            "[0, 85, 170] for the shared electrode (0 = pore, 85 = NMC, 170 = CBD); the image "
            "may hold no other value. Empty: the image must hold exactly `phases` values, "
            "taken in ascending order"
        },
    )
    denoise: bool = _f(False, "non-local-means denoising before segmentation")
    min_island: int = _f(0, "remove islands smaller than this [voxels] (0 = keep all)", ge=0)

    def problems(self) -> list[str]:
        """Cross-field checks."""
        out = []
        if self.method == "threshold" and self.threshold is None:
            out.append("threshold: method='threshold' needs a grey value in segment.threshold")
        if self.method == "otsu" and self.phases != 2:
            out.append(f"method: 'otsu' finds 2 phases, not {self.phases}; use 'multiotsu'")
        if self.label_values and len(self.label_values) != self.phases:
            out.append(
                f"label_values: {len(self.label_values)} values given for {self.phases} phases"
            )
        return out


@dataclass(frozen=True)
class HomogenizeConfig:
    """Effective transport: tortuosity per axis, tensors, bounds."""

    phase: Literal["pore", "active", "solid", "cbd"] = _f(
        "pore", "phase whose transport is homogenised (others insulating)"
    )
    axes: list[Literal["x", "y", "z"]] = field(
        default_factory=lambda: ["x", "y", "z"],
        metadata={"doc": "axes of the flux set-ups", "min_len": 1},
    )
    degree: int = _f(1, "Lagrange degree of the FEM solve", ge=1, le=2)
    voxel_baseline: bool = _f(True, "also solve the voxel finite-volume baseline")
    error_bars: bool = _f(
        True,
        "an error bar on each FEM tau: P1 against P2 on the same mesh (discretisation) and P1 "
        "on two alternative level-set meshes of the image, smoothing halved and pore "
        "diagonal contacts not bridged (geometry); the recommended value is the P2 one; "
        "costs about 8 P1 solves per axis",
    )
    rve_sizes: list[int] = field(
        default_factory=list,
        metadata={"doc": "RVE study: sub-volume edges [voxels] (empty = no study)", "ge": 4},
    )
    rve_samples: int = _f(3, "RVE study: sub-volumes per size", ge=1)
    permeability: bool = _f(
        False,
        "Stokes permeability of the pore phase along each axis (Taylor-Hood on the mesh, "
        "pressure drop between the two faces, symmetry sides) in m2, with the Kozeny-Carman "
        "constant and the hydraulic tortuosity; costs about 10 P1 solves per axis",
    )
    tensors: list[Literal["dirichlet", "flux"]] = field(
        default_factory=lambda: ["dirichlet"],
        metadata={
            "doc": "FEM apparent tensors of the box: affine 'dirichlet' (upper estimate), "
            "uniform 'flux' (lower; only where conducting phases cover the box faces); "
            "the spread to the per-axis mixed set-up is the boundary-condition "
            "sensitivity (empty = none)"
        },
    )


@dataclass(frozen=True)
class SimulateConfig:
    """Half-cell cycling of the imaged electrode against lithium metal.

    Maps onto :func:`tomofem.solvers.discharge.run_half_cell`: ``mode``,
    ``c_rate``, the cut-offs and ``soc0`` make its ``Protocol``; ``counter``,
    ``cbd``, ``collector_face`` and ``dilute`` its ``HalfCellConfig``;
    ``[simulate.control]`` is its step control as is.
    """

    mode: Literal["discharge", "charge"] = _f(
        "discharge", "discharge (CC to v_min) or charge (CC to v_max, then CV)"
    )
    c_rate: float = _f(1.0, "applied C-rate [1/h]", gt=0.0, le=100.0)
    v_min: float = _f(3.0, "lower cut-off voltage [V vs Li]", gt=0.0)
    v_max: float = _f(4.3, "upper cut-off voltage [V vs Li]", gt=0.0)
    soc0: float = _f(1.0, "initial state of charge of the active material [-]", ge=0.0, le=1.0)
    t_end: float = _f(7200.0, "longest simulated time of the protocol step [s]", gt=0.0)
    electrode: str = _f("nmc811_chen2020", "active-material parameter set")
    electrolyte: str = _f("lipf6_valoen2005", "electrolyte parameter set")
    counter: Literal["reservoir", "lithium"] = _f(
        "reservoir", "opposite face: electrolyte reservoir or Li-metal counter electrode"
    )
    cbd: Literal["electrolyte", "conductor"] = _f(
        "electrolyte", "carbon-binder cells: porous electrolyte or electronic conductor"
    )
    collector_face: Literal["xmin", "xmax", "ymin", "ymax", "zmin", "zmax"] = _f(
        "xmin", "box face whose solid part is the current collector"
    )
    dilute: bool = _f(False, "ideal-solution electrolyte (thermodynamic factor 1)")
    time_order: int = _f(2, "BDF order (1 or 2)", ge=1, le=2)
    linear: Literal["auto", "direct", "salt-fieldsplit", "fieldsplit"] = _f(
        "auto", "linear solver of Newton"
    )
    max_soc_step: float = _f(0.01, "largest SOC change per step [-]", gt=0.0, le=0.5)
    checkpoint_every: int = _f(10, "steps between checkpoints (0 = only at the end)", ge=0)
    vtx_every: int = _f(0, "steps between field outputs for ParaView (0 = none)", ge=0)
    control: StepControl = field(default_factory=StepControl)

    def problems(self) -> list[str]:
        """Cross-field checks."""
        out = []
        if self.v_min >= self.v_max:
            out.append(
                f"v_min: lower cut-off {self.v_min} V must be below the upper cut-off "
                f"v_max = {self.v_max} V (are they swapped?)"
            )
        from tomofem.materials import ELECTRODES, ELECTROLYTES

        for key, table in (("electrode", ELECTRODES), ("electrolyte", ELECTROLYTES)):
            if getattr(self, key) not in table:
                out.append(
                    f"{key}: unknown parameter set {getattr(self, key)!r}; choose one of "
                    f"{sorted(table)}"
                )
        if self.control.dt_initial > self.t_end:
            out.append(
                f"control.dt_initial: first step {self.control.dt_initial} s exceeds "
                f"t_end = {self.t_end} s"
            )
        return out


@dataclass(frozen=True)
class MechanicsConfig:
    """Effective stiffness of the electrode film (pores void, solid phases elastic).

    Maps onto :func:`tomofem.homogenization.elasticity.effective_stiffness`; the
    default constants are those of :mod:`tomofem.materials.mechanics` (NMC811
    polycrystal, carbon-binder domain).
    """

    bcs: list[Literal["dirichlet", "periodic", "mixed"]] = field(
        default_factory=lambda: ["dirichlet"],
        metadata={
            "doc": "boundary conditions of the six cell problems: affine 'dirichlet' (upper "
            "estimate), 'periodic' (needs a mesh with matching opposite faces) or 'mixed' "
            "(normal or tangential fluctuation zero per face); with several, their spread "
            "is reported",
            "min_len": 1,
        },
    )
    degree: int = _f(1, "Lagrange degree of the displacement", ge=1, le=2)
    active_young: float = _f(199e9, "Young's modulus of the active phase [Pa]", gt=0.0)
    active_poisson: float = _f(0.25, "Poisson ratio of the active phase [-]", gt=-1.0, lt=0.5)
    cbd_young: float = _f(1e9, "Young's modulus of the carbon-binder domain [Pa]", gt=0.0)
    cbd_poisson: float = _f(0.3, "Poisson ratio of the carbon-binder domain [-]", gt=-1.0, lt=0.5)
    cbd_load_bearing: bool = _f(True, "the carbon-binder domain carries load (else it is void)")
    checkpoint: str | None = _f(
        None,
        "discharge checkpoint (a simulate run folder's checkpoint.h5) whose solid "
        "stoichiometry drives a lithiation-stress solve on its mesh (one-way coupling); "
        "relative to the config file",
        path=True,
    )
    stress_free_stoichiometry: float | None = _f(
        None,
        "stoichiometry at which the active material is stress-free (default: the volume "
        "mean of the checkpoint's field, so only its heterogeneity makes stress)",
        ge=0.0,
        le=1.0,
    )
    collector_face: Literal["xmin", "xmax", "ymin", "ymax", "zmin", "zmax"] = _f(
        "xmin", "clamped box face (current collector) of the lithiation-stress solve"
    )
    stack_pressure: float = _f(0.0, "pressure on the face opposite the collector [Pa]", ge=0.0)


@dataclass(frozen=True)
class NetworkConfig:
    """Pore-network model of one phase: SNOW2 extraction, OpenPNM transport, drainage.

    Maps onto :func:`tomofem.homogenization.network.network_transport` and
    :func:`~tomofem.homogenization.network.drainage`; needs the optional extra
    ``network`` (``pip install 'tomofem[network]'``) and cubic voxels.
    """

    phase: Literal["pore", "active", "solid", "cbd"] = _f(
        "pore", "phase whose network is extracted (True phase of SNOW2)"
    )
    axes: list[Literal["x", "y", "z"]] = field(
        default_factory=lambda: ["x", "y", "z"],
        metadata={"doc": "axes of the network tau and permeability", "min_len": 1},
    )
    boundary_width: int = _f(3, "SNOW2 boundary-pore padding [voxels]", ge=1)
    drainage: bool = _f(
        False,
        "capillary pressure against saturation along the first axis (Young-Laplace throat "
        "entry pressures, OpenPNM drainage, access-limited, no trapping)",
    )
    surface_tension: float = _f(0.072, "drainage: surface tension of the fluid pair [N/m]", gt=0.0)
    contact_angle: float = _f(
        180.0, "drainage: contact angle of the invading phase [deg]", gt=90.0, le=180.0
    )


@dataclass(frozen=True)
class OutputConfig:
    """The run folder."""

    folder: str = _f(
        "tomofem-run", "run folder to create (relative to the working directory, like -o)"
    )
    force: bool = _f(False, "replace an existing run folder")
    pictures: bool = _f(True, "write PNG plots and renders")
    fields: bool = _f(True, "write solution fields and the tagged mesh for ParaView")


STAGES = ("segment", "analyze", "mesh", "homogenize", "simulate")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; each section is one stage's options."""

    stages: list[
        Literal["segment", "analyze", "mesh", "homogenize", "simulate", "mechanics", "network"]
    ] = field(
        default_factory=lambda: list(STAGES),
        metadata={"doc": "stages of `tomofem pipeline`, in order"},
    )
    image: ImageConfig = field(default_factory=ImageConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    mesh: MeshOptions = field(default_factory=MeshOptions)
    homogenize: HomogenizeConfig = field(default_factory=HomogenizeConfig)
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    mechanics: MechanicsConfig = field(default_factory=MechanicsConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


# --------------------------------------------------------------------------- machinery


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        return f"a list of {len(args)} {_plural(args[0])}"
    if origin is list:
        return f"a list of {_plural(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _plural(tp: Any) -> str:
    names = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
    return names.get(tp, _type_name(tp))


def _limits(value: Any, meta: Mapping[str, Any]) -> str | None:
    """Range problem of one scalar, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    for key, op, word in (
        ("ge", lambda v, b: v >= b, ">="),
        ("gt", lambda v, b: v > b, ">"),
        ("le", lambda v, b: v <= b, "<="),
        ("lt", lambda v, b: v < b, "<"),
    ):
        if key in meta and not op(value, meta[key]):
            return f"must be {word} {meta[key]}, got {value}"
    return None


def _convert(value: Any, tp: Any, path: str, meta: Mapping[str, Any], out: list[str]) -> Any:
    """Convert a TOML value to ``tp``; append problems to ``out``; return _MISSING on failure."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        content: list[str] = []
        for a in args:
            trial: list[str] = []
            res = _convert(value, a, path, meta, trial)
            if res is not _MISSING and not trial:
                return res
            if not content and any(": expected " not in t for t in trial):
                content = trial  # right type, wrong range or entries: report that
        if content:
            out.extend(content)
            return _MISSING
        out.append(f"{path}: expected {_type_name(tp)}, got {value!r}")
        return _MISSING
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices and type(value) is type(choices[0]):
            return value
        hint = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        out.append(f"{path}: {value!r} is not {_type_name(tp)}{extra}")
        return _MISSING
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            out.append(f"{path}: expected {_type_name(tp)}, got {value!r}")
            return _MISSING
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                out.append(f"{path}: expected {_type_name(tp)}, got {len(value)} values")
                return _MISSING
            item_types = list(args)
        else:
            item_types = [args[0]] * len(value)
        if len(value) < meta.get("min_len", 0):
            out.append(f"{path}: needs at least {meta['min_len']} entries, got {len(value)}")
            return _MISSING
        n0 = len(out)
        items = [
            _convert(v, t, f"{path}[{i}]", meta, out)
            for i, (v, t) in enumerate(zip(value, item_types, strict=True))
        ]
        if len(out) > n0:
            return _MISSING
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            out.append(f"{path}: expected a table [{path}], got {value!r}")
            return _MISSING
        return _build(tp, value, path, out)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if value in (member.value, member.name, str(member.name).lower()):
                return member
        out.append(f"{path}: {value!r} is not one of {[m.name.lower() for m in tp]}")
        return _MISSING
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is Path:
        ok = isinstance(value, str | Path)
        value = Path(value) if ok else value
    else:
        ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    if not ok:
        out.append(f"{path}: expected {_type_name(tp)}, got {value!r}")
        return _MISSING
    problem = _limits(value, meta)
    if problem:
        out.append(f"{path}: {problem}")
        return _MISSING
    if "choices" in meta and value not in meta["choices"]:
        out.append(f"{path}: {value!r} is not one of {list(meta['choices'])}")
        return _MISSING
    return value


def _keyed(problem: str, fields: Mapping[str, Any], prefix: str) -> str:
    """Prefix a section's own message with its key path (``simulate.control: ...``)."""
    head = problem.split(":")[0].split("=")[0].split(".")[0].split("[")[0].strip()
    if head in fields:
        return f"{prefix}.{problem}" if prefix else problem
    return f"{prefix or 'config'}: {problem}"


def _build[T](cls: type[T], data: Mapping[str, Any], prefix: str, out: list[str]) -> T:
    """Build ``cls`` from ``data``; problems go to ``out`` (a default stands in for bad values)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    dot = f"{prefix}." if prefix else ""
    for key in data:
        if key not in fields:
            hint = difflib.get_close_matches(str(key), list(fields), n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            out.append(f"{dot}{key}: unknown key{extra} (allowed: {', '.join(sorted(fields))})")
    kwargs: dict[str, Any] = {}
    failed: set[str] = set()
    for name, f in fields.items():
        if name not in data:
            continue
        val = _convert(data[name], hints[name], f"{dot}{name}", f.metadata, out)
        if val is _MISSING:
            failed.add(name)
        else:
            kwargs[name] = val
    try:
        obj = cls(**kwargs)
    except ConfigError as exc:  # the section's own __post_init__ checks
        for p in exc.problems:
            head, _, rest = p.partition(".")
            if rest and head not in fields:  # "meshing.max_size=..." -> "mesh.max_size=..."
                p = rest
            out.append(_keyed(p, fields, prefix))
        return cls()
    except (TomofemError, ValueError, TypeError) as exc:
        out.append(f"{prefix or cls.__name__}: {exc}")
        return cls()
    validate = getattr(obj, "validate", None)  # the API's own checks, if it has them
    if callable(validate) and not failed:
        try:
            validate()
        except ConfigError as exc:
            out.extend(_keyed(p, fields, prefix) for p in exc.problems)
    checker = getattr(obj, "problems", None)
    if callable(checker):  # cross-field rules, except on keys already reported
        out.extend(f"{dot}{p}" for p in checker() if p.split(":")[0] not in failed)
    return obj


def from_mapping[T](cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build the frozen dataclass ``cls`` from a mapping, validating everything.

    Parameters
    ----------
    cls
        A dataclass whose fields carry type annotations (and optionally range
        metadata and a ``problems()`` method for cross-field rules).
    data
        Parsed TOML (nested dicts); keys absent from it keep their defaults.
    prefix
        Key path of ``data`` inside a larger file, used in messages.

    Raises
    ------
    ConfigError
        With one line per problem, each starting with its key path.
    """
    problems: list[str] = []
    obj = _build(cls, data, prefix, problems)
    if problems:
        raise ConfigError(problems)
    return obj


def parse_value(text: str) -> Any:
    """Parse a command-line value as a TOML literal (``2``, ``0.5``, ``true``, ``[1, 2]``).

    Anything that is not a TOML literal is taken as a plain string, so
    ``--set image.source=data/x.tif`` needs no quotes.
    """
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted-path ``overrides`` set (flags beat the file)."""
    import copy

    out = copy.deepcopy(data)
    problems = []
    for dotted, value in overrides.items():
        keys = dotted.split(".")
        node = out
        for k in keys[:-1]:
            nxt = node.setdefault(k, {})
            if not isinstance(nxt, dict):
                problems.append(f"{dotted}: {k!r} is a value, not a table")
                break
            node = nxt
        else:
            node[keys[-1]] = value
    if problems:
        raise ConfigError(problems)
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into nested dicts; syntax errors become ConfigError with the line."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found; check the --config path") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc}); fix the syntax at that line") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot be read as a TOML file ({exc})") from None


def _absolute(value: str, base: Path | None) -> str:
    """``value`` as an absolute path: relative to ``base``, or to the working directory."""
    p = Path(value).expanduser()
    if not p.is_absolute():
        p = (base if base is not None else Path.cwd()) / p
    return os.path.normpath(p)


def _is_path(f: dataclasses.Field, value: Any) -> bool:
    return bool(f.metadata.get("path")) and isinstance(value, str) and bool(value)


def resolve_paths(cls: type, data: Mapping[str, Any], base: Path | None) -> dict[str, Any]:
    """Copy of ``data`` whose path-valued keys are absolute paths.

    A key is a path when its field's metadata says ``path=True``: the inputs
    (``image.source``; its ``keywords`` such as ``"synthetic"`` are left alone).
    The run folder (``output.folder``) is not: runs are made where tomofem runs.

    Parameters
    ----------
    base
        Folder relative paths are taken against: a config file's own folder,
        so a config works from any working directory; ``None`` = the working
        directory (command-line values).
    """
    out = dict(data)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in out:
            continue
        value, tp = out[f.name], hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
            out[f.name] = resolve_paths(tp, value, base)  # type: ignore[arg-type]
        elif _is_path(f, value) and value not in f.metadata.get("keywords", ()):
            out[f.name] = _absolute(value, base)
    return out


def _resolve_override_paths(cls: type, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted-key overrides with their path values made absolute (working directory)."""
    nested = apply_overrides({}, overrides)
    resolved = resolve_paths(cls, nested, None)
    out = {}
    for dotted, value in overrides.items():
        node: Any = resolved
        for k in dotted.split("."):
            node = node.get(k) if isinstance(node, Mapping) else None
        out[dotted] = node if isinstance(node, str) and node != value else value
    return out


def load_config[T](
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    cls: type[T] = RunConfig,  # type: ignore[assignment]
) -> T:
    """Read ``path`` (optional), apply ``overrides`` (dotted key -> value), validate.

    Input paths are stored absolute in the result, so the resolved
    configuration a run folder records reads the same from anywhere.

    Parameters
    ----------
    path
        A TOML file; ``None`` starts from the defaults. A relative input path
        in it (``image.source``) is taken against the file's own folder, so a
        config beside its data works from any working directory; the run
        folder (``output.folder``) stays relative to the working directory.
    overrides
        Values from command-line flags, keyed by dotted path
        (``{"simulate.c_rate": 2.0}``); they replace the file's values. Their
        relative paths are taken against the working directory.
    cls
        The dataclass to build (the whole :class:`RunConfig` by default).

    Raises
    ------
    ConfigError
        Listing every problem of the file and overrides together.
    """
    data = read_toml(path) if path is not None else {}
    if path is not None:
        data = resolve_paths(cls, data, Path(path).expanduser().absolute().parent)
    data = apply_overrides(data, _resolve_override_paths(cls, overrides or {}))
    prefix = str(path) if path is not None else ""
    try:
        return from_mapping(cls, data)
    except ConfigError as exc:
        if prefix:
            raise ConfigError([f"{prefix}: {p}" for p in exc.problems]) from None
        raise


def to_dict(obj: Any) -> Any:
    """Plain nested dict/list form of a config dataclass (tuples -> lists, enums -> names)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, enum.Enum):
        return obj.name.lower()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Sequence) and not isinstance(obj, str):
        return [to_dict(v) for v in obj]
    return obj


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def to_toml(obj: Any) -> str:
    """TOML text of a config dataclass, ``None`` values omitted; round-trips via load_config."""
    lines: list[str] = []

    def emit(table: dict[str, Any], name: str) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict) and v is not None}
        if name:
            lines.append(f"\n[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        for k, v in table.items():
            if isinstance(v, dict):
                emit(v, f"{name}.{k}" if name else k)

    emit(to_dict(obj), "")
    return "\n".join(lines).lstrip("\n") + "\n"


def describe(cls: type = RunConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """Every key of ``cls`` as (dotted path, type, doc): the reference the docs print."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, path + "."))  # type: ignore[arg-type]
        else:
            rows.append((path, _type_name(tp), f.metadata.get("doc", "")))
    return rows
