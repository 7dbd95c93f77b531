"""Reports returned with every array an image operation modifies (nothing is fixed silently)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class CleanupReport:
    """What an operation changed in a label image, and why.

    Attributes
    ----------
    operation
        Name of the operation (e.g. ``"remove_isolated"``, ``"opening"``).
    phase
        Label index the operation targeted.
    reason
        One sentence on why voxels were changed.
    voxels_changed
        Number of voxels whose label changed [voxels].
    volume_fraction_changed
        ``voxels_changed`` divided by the image size [-].
    clusters_removed
        Connected clusters removed (0 where not applicable) [-].
    changed_to
        How many changed voxels went to each label, keyed by label index
        (string keys, so the report is JSON-ready) [voxels].
    """

    operation: str
    phase: int
    reason: str
    voxels_changed: int
    volume_fraction_changed: float
    clusters_removed: int = 0
    changed_to: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-serialisable dictionary."""
        return asdict(self)


def diff_report(
    before: np.ndarray,
    after: np.ndarray,
    operation: str,
    phase: int,
    reason: str,
    clusters_removed: int = 0,
) -> CleanupReport:
    """Build a :class:`CleanupReport` by comparing two label arrays of equal shape."""
    changed = before != after
    n = int(np.count_nonzero(changed))
    to = np.bincount(after[changed].ravel().astype(np.int64)) if n else np.zeros(0, int)
    return CleanupReport(
        operation=operation,
        phase=int(phase),
        reason=reason,
        voxels_changed=n,
        volume_fraction_changed=n / before.size,
        clusters_removed=int(clusters_removed),
        changed_to={str(i): int(c) for i, c in enumerate(to) if c},
    )
