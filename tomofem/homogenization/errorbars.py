"""An error bar on every tortuosity factor: discretisation and geometry, reported apart.

* **Discretisation** (how far the FEM answer is from the exact answer *on
  this mesh's geometry*): P1 and P2 on the same mesh. The flux functional of
  P1 converges like ``h^2`` and that of P2 faster, so ``|tau_P2 - tau_P1|``
  bounds the P1 error and overestimates the P2 error; it is the bar reported
  for the recommended P2 value (conservative).
* **Geometry** (how far the meshed geometry may be from the material's):
  half the range of P1 answers over defensible alternatives to the default
  mesh, each built from the same image (smoothing of the level sets, the
  pore's diagonal contacts bridged or not, a second segmentation when grey
  values exist). P1 against P1, so the discretisation does not enter.

The recommended value and the reason for it follow the ground-truth study
(``bench/truth.py``, docs/theory/ground-truth.md).
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
        Absolute half-spread over the geometry variants [-] (NaN if none were run).
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
    "conformal FEM (P2) on the level-set mesh: on exact-geometry benchmarks it is closer to "
    "the truth than the voxel solvers at every resolution tested (docs: ground truth)"
)
VOXEL_REASON = (
    "voxel finite volumes: no conformal mesh was made for this run (FEM skipped), so the "
    "voxel answer is the only one; it overestimates tau on staircase geometry (docs: ground truth)"
)


def estimate_tau(
    axis: str,
    candidates: Mapping[str, float],
    variants: Mapping[str, float] | None = None,
    *,
    reason: str | None = None,
) -> TauEstimate:
    """Pick the value to publish and size its error parts.

    Parameters
    ----------
    axis
        Axis name.
    candidates
        Answers by method: ``"fem-p1"``, ``"fem-p2"``, ``"voxel-fvm"`` (any subset).
    variants
        P1 answers on alternative meshes of the same image (geometry spread);
        the default mesh's ``"fem-p1"`` is included in the spread.
    reason
        Override the recommendation's reason.

    Returns
    -------
    TauEstimate
    """
    cand = {k: float(v) for k, v in candidates.items()}
    var = {k: float(v) for k, v in (variants or {}).items()}
    p1, p2 = cand.get("fem-p1", math.nan), cand.get("fem-p2", math.nan)
    if math.isfinite(p2):
        method, tau = "fem-p2", p2
        disc = abs(p2 - p1) if math.isfinite(p1) else math.nan
        why = reason or RECOMMENDED_REASON
    elif math.isfinite(p1):
        method, tau, disc = "fem-p1", p1, math.nan
        why = reason or RECOMMENDED_REASON.replace("(P2)", "(P1; no P2 solve, no error bar)")
    elif "voxel-fvm" in cand:
        method, tau, disc = "voxel-fvm", cand["voxel-fvm"], math.nan
        why = reason or VOXEL_REASON
    else:
        method, tau, disc, why = "none", math.nan, math.nan, "no answer was computed"
    if any(math.isinf(v) for v in cand.values()) and method != "none":
        # a blocked axis: no finite value is an answer
        if math.isinf(tau) or all(math.isinf(v) for v in cand.values()):
            return TauEstimate(axis, math.inf, method, 0.0, 0.0, "does not percolate", cand, var)
    spread = [v for v in (*var.values(), p1) if math.isfinite(v)]
    geom = 0.5 * (max(spread) - min(spread)) if len(spread) >= 2 and var else math.nan
    return TauEstimate(axis, tau, method, disc, geom, why, cand, var)
