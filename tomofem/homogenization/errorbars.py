"""An error bar on every tortuosity factor: discretisation and geometry, reported apart.

What the ground-truth study (``bench/truth.py``, docs/theory/ground-truth.md)
found on electrode-like structures whose necks are 0.7-2 voxels wide: every
image-based answer overestimates tau, because segmentation narrows or cuts
the necks; the error is dominated by the *geometry* of the mesh, not by the
finite elements on it. FEM on the level-set mesh has 1/4 to 2/3 of the voxel
solver's error; halving the lattice step and the smoothing halves the FEM
error again; and P2 on the default mesh is *further* from the truth than P1
(it solves the narrowed geometry more exactly, while P1's excess stiffness
partly offsets the narrowing). Hence:

* **Recommended value**: P1 on the finest mesh of the image that the run made
  (the refined geometry variant when it was affordable, else the run's mesh).
* **Discretisation**: ``|tau_P2 - tau_P1|`` on the run's mesh: the change a
  higher-order solve makes on the same geometry.
* **Geometry**: the largest distance from the recommended value to the P1
  answers on the other defensible meshes of the same image (the run's mesh,
  the refined one, the pore's diagonal contacts not bridged). P1 against P1,
  so the discretisation does not enter.

On the truth set the two parts together cover the recommended value's error
in the cases listed on the docs page; where they do not, the page says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class TauEstimate:
    """The tortuosity factor to publish along one axis, with its two error parts.

    Attributes
    ----------
    axis
        ``"x"``, ``"y"`` or ``"z"``.
    tau
        Recommended value [-] (inf if the phase does not percolate).
    method
        Which answer ``tau`` is (e.g. ``"fem-p2"``).
    discretisation
        Absolute error estimate of the discretisation on this mesh [-].
    geometry
        Largest absolute distance from ``tau`` to the P1 answers on the other
        meshes of the image [-] (NaN if none were run).
    reason
        Why this value is recommended, in one sentence.
    candidates
        Every answer computed for this axis, by method name [-].
    variants
        P1 answers on the geometry variants, by variant name [-].
    """

    axis: str
    tau: float
    method: str
    discretisation: float
    geometry: float
    reason: str
    candidates: dict[str, float] = field(default_factory=dict)
    variants: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """Both parts added in quadrature (NaN parts count as zero) [-]."""
        parts = [p for p in (self.discretisation, self.geometry) if math.isfinite(p)]
        return math.hypot(*parts) if parts else math.nan

    def to_dict(self) -> dict:
        """JSON-serialisable form, with ``total``."""
        return asdict(self) | {"total": self.total}

    def text(self) -> str:
        """``1.683 ± 0.004 (disc.) ± 0.030 (geom.)`` or ``inf``."""
        if not math.isfinite(self.tau):
            return "inf (does not percolate)"
        out = f"{self.tau:.4g} ± {self.discretisation:.2g} (disc.)"
        if math.isfinite(self.geometry):
            out += f" ± {self.geometry:.2g} (geom.)"
        return out


RECOMMENDED_REASON = (
    "P1 FEM on the finest conformal mesh of this image: on exact-geometry benchmarks of "
    "electrode-like structures it is closer to the truth than the voxel solvers (which "
    "overestimate tau on staircase necks) and than P2 on a coarser mesh (docs: ground truth)"
)
VOXEL_REASON = (
    "voxel finite volumes: no conformal mesh was made for this run, so the voxel answer is "
    "the only one; on the ground-truth set it overestimates tau by 10-25 % where necks are "
    "1-2 voxels wide (docs: ground truth)"
)


def estimate_tau(
    axis: str,
    candidates: Mapping[str, float],
    variants: Mapping[str, float] | None = None,
    *,
    recommend: str | None = None,
    reason: str | None = None,
) -> TauEstimate:
    """Pick the value to publish and size its error parts.

    Parameters
    ----------
    axis
        Axis name.
    candidates
        Answers on the run's own mesh and image by method: ``"fem-p1"``,
        ``"fem-p2"``, ``"voxel-fvm"`` (any subset).
    variants
        P1 answers on alternative meshes of the same image (geometry).
    recommend
        Name of the variant to recommend (the refined mesh), if computed and
        finite; default: the run mesh's P1, else P2, else the voxel value.
    reason
        Override the recommendation's reason.

    Returns
    -------
    TauEstimate
    """
    cand = {k: float(v) for k, v in candidates.items()}
    var = {k: float(v) for k, v in (variants or {}).items()}
    p1, p2 = cand.get("fem-p1", math.nan), cand.get("fem-p2", math.nan)
    disc = abs(p2 - p1) if math.isfinite(p1) and math.isfinite(p2) else math.nan
    if recommend and math.isfinite(var.get(recommend, math.nan)):
        method, tau = f"fem-p1 ({recommend})", var[recommend]
        why = reason or RECOMMENDED_REASON
    elif math.isfinite(p1):
        method, tau, why = "fem-p1", p1, reason or RECOMMENDED_REASON
    elif math.isfinite(p2):
        method, tau, why = "fem-p2", p2, reason or RECOMMENDED_REASON.replace("P1", "P2", 1)
    elif "voxel-fvm" in cand:
        method, tau, disc = "voxel-fvm", cand["voxel-fvm"], math.nan
        why = reason or VOXEL_REASON
    else:
        method, tau, disc, why = "none", math.nan, math.nan, "no answer was computed"
    values = list(cand.values()) + list(var.values())
    if values and all(math.isinf(v) for v in values):
        return TauEstimate(axis, math.inf, method, 0.0, 0.0, "does not percolate", cand, var)
    others = [v for k, v in var.items() if k != recommend] + ([p1] if recommend else [])
    others = [v for v in others if math.isfinite(v)]
    geom = max(abs(v - tau) for v in others) if others and math.isfinite(tau) else math.nan
    return TauEstimate(axis, tau, method, disc, geom, why, cand, var)
