"""Microstructure-derived effective parameters for PyBaMM and BPX.

A pore-scale run answers what a homogenised (Doyle-Fuller-Newman) model
needs from the microstructure: porosity, the electrolyte's and the solid's
tortuosity factors through the electrode, specific surface area and a particle
radius. This module reads them from a run's ``results.json`` and writes them
under the names PyBaMM (``pybamm.ParameterValues``) and the Battery Parameter
eXchange format (BPX) use, with SI units.

Conventions (both tools agree with tomofem's, :mod:`tomofem.homogenization.results`):

* Transport efficiency ``D_eff / D = eps / tau`` (the inverse MacMullin
  number). PyBaMM's ``{"transport efficiency": "tortuosity factor"}`` option
  reads ``"Positive electrode tortuosity factor (electrolyte)"`` = tau;
  BPX's electrode ``"Transport efficiency"`` is ``eps / tau``.
* PyBaMM's default Bruggeman model uses ``D_eff / D = eps ** b``; the
  exported ``b = 1 - ln(tau) / ln(eps)`` reproduces the computed tau exactly at
  the imaged porosity (it is the alpha of
  :func:`tomofem.homogenization.bounds.bruggeman_tau`), so the default model
  works without changing options.
* PyBaMM computes the surface area of spherical particles as ``a = 3 eps_s / R``
  (``eps_s`` the active material volume fraction); the exported radius is
  ``R = 3 eps_s / a`` with the measured ``a``, so a PyBaMM model sees the
  imaged active surface. PyBaMM's lithium-ion models read no surface-area
  parameter (``"particle shape"`` is ``"spherical"`` or ``"no particles"``),
  so the measured ``a`` goes to BPX and to the provenance, not to the mapping.
* PyBaMM's "electrode" transport phase is all the solid, volume fraction
  ``1 - porosity`` (active material and binder alike): its effective
  conductivity is ``sigma (1 - eps) / tau_s``, or ``sigma (1 - eps) ** b_s``.
* Lengths: the run's voxel size is taken in micrometres (tomofem's convention)
  and converted to metres.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from tomofem.errors import ConfigError, RunFolderError
from tomofem.io.atomic import write_json

Electrode = Literal["positive", "negative"]
AXES = ("x", "y", "z")
UM = 1e-6


@dataclass(frozen=True)
class EffectiveParameters:
    """Effective parameters of one electrode for a homogenised model.

    Attributes
    ----------
    electrode
        ``"positive"`` or ``"negative"``.
    axis
        Through-plane direction of the homogenised model (``"x"``, ``"y"``, ``"z"``).
    porosity
        Electrolyte-filled volume fraction [-].
    active_fraction
        Active-material volume fraction [-] (None if not measured).
    tau_electrolyte
        Tortuosity factor of the pore phase along ``axis`` [-] (``inf`` if
        the pores do not percolate).
    tau_electrode
        Tortuosity factor of the whole solid (active material and binder, the
        electronically conducting phases) along ``axis`` [-], None if not computed.
    thickness
        Electrode thickness along ``axis`` [m].
    specific_surface
        Active/electrolyte interface area per electrode volume [m-1], or None.
    particle_radius
        Equivalent particle radius ``3 eps_s / a`` [m], or None.
    method
        Which solver gave the tortuosity (``fem-p2``, ``fem-p1``, ``voxel-fvm``).
    tau_error_discretisation, tau_error_geometry
        The two parts of the error bar on ``tau_electrolyte`` [-] (None if
        the run estimated none; :mod:`tomofem.homogenization.errorbars`).
    reason
        Why this tortuosity was chosen (the run's recommendation).
    """

    electrode: Electrode
    axis: str
    porosity: float
    active_fraction: float | None
    tau_electrolyte: float
    tau_electrode: float | None
    thickness: float
    specific_surface: float | None
    particle_radius: float | None
    method: str
    tau_error_discretisation: float | None = None
    tau_error_geometry: float | None = None
    reason: str = ""

    @property
    def transport_efficiency(self) -> float:
        """``eps / tau`` of the electrolyte [-] (0 when it does not percolate)."""
        return 0.0 if math.isinf(self.tau_electrolyte) else self.porosity / self.tau_electrolyte


def bruggeman_exponent(porosity: float, tau: float) -> float:
    """Exponent ``b`` with ``porosity ** b == porosity / tau`` (``b = 1 - ln tau / ln eps``).

    Raises
    ------
    ConfigError
        For a porosity outside (0, 1) or an infinite tortuosity (no finite
        exponent represents a blocked phase).
    """
    if not 0.0 < porosity < 1.0:
        raise ConfigError(f"porosity {porosity} must lie in (0, 1) for a Bruggeman exponent")
    if not math.isfinite(tau) or tau <= 0:
        raise ConfigError(
            f"tortuosity {tau} has no Bruggeman exponent: the phase does not percolate "
            "along this axis; a homogenised model cannot represent it"
        )
    return 1.0 - math.log(tau) / math.log(porosity)


def _tau(entry: dict[str, Any] | None) -> float | None:
    if not entry:
        return None
    t = entry.get("tau")
    return math.inf if t == "inf" else float(t)


def from_results(
    doc: dict[str, Any], electrode: Electrode = "positive", axis: str = "x"
) -> EffectiveParameters:
    """Collect the effective parameters from a run's ``results.json`` document.

    The run's recommended tortuosity (with its error bar) is used when the run
    has one, else the FEM value, else the voxel baseline; the choice and its
    reason travel with the parameters.

    Raises
    ------
    ConfigError
        If the run lacks what a homogenised model needs (no homogenize stage
        on the pore phase along ``axis``), naming the missing stage.
    """
    if axis not in AXES:
        raise ConfigError(f"axis {axis!r}: choose one of {AXES}")
    res = doc.get("results", {})
    image = res.get("image", {})
    hom = res.get("homogenize")
    if not hom or hom.get("phase") != "pore":
        raise ConfigError(
            "the run has no pore-phase tortuosity: run `tomofem homogenize --phase pore` "
            "(or a pipeline with the homogenize stage) first"
        )
    method, entry = None, None
    for m in ("fem", "voxel"):
        if axis in hom.get(m, {}):
            method, entry = m, hom[m][axis]
            break
    if entry is None:
        raise ConfigError(
            f"the run has no tortuosity along {axis}: rerun homogenize with --axes {axis}"
        )
    tau_e = _tau(entry)
    errors: dict[str, Any] = {"reason": f"{method} value (the run recommended none)"}
    rec = hom.get("recommended", {}).get(axis)
    if rec and rec.get("tau_recommended") is not None:
        tau_e = _tau({"tau": rec["tau_recommended"]})
        method = rec.get("method", method)
        errors = {
            "tau_error_discretisation": _finite(rec.get("tau_error_discretisation")),
            "tau_error_geometry": _finite(rec.get("tau_error_geometry")),
            "reason": str(rec.get("recommended_reason", "")),
        }
    porosity = float(entry["porosity"])
    fractions = {
        k: v["volume_fraction"] for k, v in res.get("analyze", {}).get("phases", {}).items()
    }
    active = fractions.get("active")
    shape = image.get("shape")
    spacing = image.get("spacing", [1.0, 1.0, 1.0])
    k = AXES.index(axis)
    thickness = float(shape[k]) * float(spacing[k]) * UM if shape else float(entry["length"]) * UM
    spec = res.get("analyze", {}).get("interfaces", {}).get("specific", {}).get("0|1")
    a = float(spec) / UM if spec is not None else None
    radius = 3.0 * active / a if (a and active) else None
    return EffectiveParameters(
        electrode=electrode,
        axis=axis,
        porosity=porosity,
        active_fraction=active,
        tau_electrolyte=float(tau_e),
        tau_electrode=None,
        thickness=thickness,
        specific_surface=a,
        particle_radius=radius,
        method=str(method if rec else entry.get("method", method)),
        **errors,
    )


def _finite(v: Any) -> float | None:
    """Return a JSON number as float; None for absent, NaN or non-numbers."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def to_pybamm(p: EffectiveParameters) -> dict[str, float]:
    """PyBaMM parameter values (names exactly as ``pybamm.ParameterValues`` keys).

    Use with the default (Bruggeman) model, or with
    ``options={"transport efficiency": "tortuosity factor"}`` to read the
    tortuosity factors directly; both give ``D_eff = D eps / tau``.
    """
    d = "Positive" if p.electrode == "positive" else "Negative"
    out: dict[str, float] = {
        f"{d} electrode porosity": p.porosity,
        f"{d} electrode thickness [m]": p.thickness,
        f"{d} electrode tortuosity factor (electrolyte)": p.tau_electrolyte,
        f"{d} electrode Bruggeman coefficient (electrolyte)": bruggeman_exponent(
            p.porosity, p.tau_electrolyte
        ),
    }
    if p.active_fraction is not None:
        out[f"{d} electrode active material volume fraction"] = p.active_fraction
    if p.tau_electrode is not None:
        out[f"{d} electrode tortuosity factor (electrode)"] = p.tau_electrode
        out[f"{d} electrode Bruggeman coefficient (electrode)"] = bruggeman_exponent(
            1.0 - p.porosity, p.tau_electrode
        )
    if p.particle_radius is not None:
        out[f"{d} particle radius [m]"] = p.particle_radius
    return out


def to_bpx(p: EffectiveParameters) -> dict[str, Any]:
    """BPX ``Parameterisation`` fragment for the electrode (merge into a full BPX file)."""
    el: dict[str, float] = {
        "Thickness [m]": p.thickness,
        "Porosity": p.porosity,
        "Transport efficiency": p.transport_efficiency,
    }
    if p.particle_radius is not None:
        el["Particle radius [m]"] = p.particle_radius
    if p.specific_surface is not None:
        el["Surface area per unit volume [m-1]"] = p.specific_surface
    name = "Positive electrode" if p.electrode == "positive" else "Negative electrode"
    return {"Parameterisation": {name: el}}


def export_run(
    run_dir: str | Path,
    output: str | Path,
    fmt: Literal["pybamm", "bpx"] = "pybamm",
    electrode: Electrode = "positive",
    axis: str = "x",
    force: bool = False,
) -> Path:
    """Write a run's effective parameters as PyBaMM values or a BPX fragment (JSON).

    The file also carries ``"_tomofem"``: where each number came from (run,
    method, axis, the conventions above), so a parameter set stays traceable.

    Raises
    ------
    RunFolderError
        If ``run_dir`` has no ``results.json`` or ``output`` exists without ``force``.
    ConfigError
        If the run lacks the stages a homogenised model needs.
    """
    src = Path(run_dir) / "results.json"
    if not src.exists():
        raise RunFolderError(f"{src} not found: give the folder of a finished tomofem run")
    out = Path(output)
    if out.exists() and not force:
        raise RunFolderError(f"{out} exists; choose another file or pass --force")
    try:
        doc = json.loads(src.read_text())
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{src} is not valid JSON ({exc}); was the run interrupted?") from None
    params = from_results(doc, electrode, axis)
    if fmt not in ("pybamm", "bpx"):
        raise ConfigError(f"format {fmt!r}: choose 'pybamm' or 'bpx'")
    body = to_pybamm(params) if fmt == "pybamm" else to_bpx(params)
    provenance = {
        "run": str(Path(run_dir).resolve()),
        "git": doc.get("git"),
        "tomofem": doc.get("versions", {}).get("tomofem"),
        "parameters": asdict(params),
        "conventions": (
            "D_eff/D = porosity/tau; Bruggeman b = 1 - ln(tau)/ln(porosity); "
            "particle radius = 3 * active fraction / specific surface; voxel size in um"
        ),
    }
    return write_json(out, {**body, "_tomofem": provenance})
