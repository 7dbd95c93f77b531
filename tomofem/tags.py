"""Every integer mesh tag, named, in one place.

Physics code never writes a bare number; it asks this module.

Conventions
-----------
* Cell tags are phase ids: ``Phase.PORE = 1``, ``Phase.ACTIVE = 2`` (also the
  solid of a two-phase image, ``Phase.SOLID``), ``Phase.CBD = 3``. Further
  phases of a many-label image take 4, 5, ... (``phase_id(i)`` for label index i).
* Interface facet tags between phases ``a < b``: ``100 + 10 a + b``
  (pore|active = 112, pore|CBD = 113, active|CBD = 123).
* Box-face facet tags per phase: ``1000 + 10 phase + face`` with the face
  numbering of :class:`BoxFace` (``pore_xmin`` = 1010, ``solid_zmax`` = 1025).
* Connected components (when requested): ``10000 * phase + component``
  (component counted from 1).
"""

from __future__ import annotations

from enum import IntEnum


class Phase(IntEnum):
    """Cell tag of each phase."""

    PORE = 1
    ACTIVE = 2
    CBD = 3

    @classmethod
    def solid(cls) -> Phase:
        """Tag of the (single) solid phase of a two-phase image."""
        return cls.ACTIVE


SOLID = Phase.ACTIVE
MAX_PHASES = 9


class BoxFace(IntEnum):
    """Faces of the image box; the axis is ``face // 2``, the side ``face % 2``."""

    XMIN = 0
    XMAX = 1
    YMIN = 2
    YMAX = 3
    ZMIN = 4
    ZMAX = 5

    @property
    def axis(self) -> int:
        """Array axis normal to the face (0 = x = first array axis)."""
        return int(self) // 2

    @property
    def is_max(self) -> bool:
        """True for the face at the upper end of the axis."""
        return bool(int(self) % 2)

    @classmethod
    def of(cls, axis: int, upper: bool) -> BoxFace:
        """Face normal to ``axis`` at its lower (``upper=False``) or upper end."""
        return cls(2 * axis + int(upper))


def phase_id(label_index: int) -> int:
    """Cell tag of the ``label_index``-th phase (0-based) of a label image."""
    if not 0 <= label_index < MAX_PHASES:
        raise ValueError(f"phase index {label_index} outside 0..{MAX_PHASES - 1}")
    return label_index + 1


def interface_tag(a: int, b: int) -> int:
    """Facet tag of the interface between phases ``a`` and ``b`` (order-free)."""
    a, b = sorted((int(a), int(b)))
    if a == b or not (1 <= a <= MAX_PHASES and 1 <= b <= MAX_PHASES):
        raise ValueError(f"no interface between phases {a} and {b}")
    return 100 + 10 * a + b


def interface_phases(tag: int) -> tuple[int, int]:
    """Inverse of :func:`interface_tag`."""
    if not 112 <= tag <= 199:
        raise ValueError(f"{tag} is not an interface tag")
    return (tag - 100) // 10, (tag - 100) % 10


def boundary_tag(phase: int, face: BoxFace | int) -> int:
    """Facet tag of ``phase``'s part of box ``face``."""
    if not 1 <= int(phase) <= MAX_PHASES:
        raise ValueError(f"phase tag {phase} outside 1..{MAX_PHASES}")
    return 1000 + 10 * int(phase) + int(BoxFace(face))


def boundary_phase_face(tag: int) -> tuple[int, BoxFace]:
    """Inverse of :func:`boundary_tag`."""
    if not 1010 <= tag <= 1000 + 10 * MAX_PHASES + 5:
        raise ValueError(f"{tag} is not a box-face tag")
    return (tag - 1000) // 10, BoxFace((tag - 1000) % 10)


def component_tag(phase: int, component: int) -> int:
    """Cell tag of connected component ``component`` (from 1) of ``phase``."""
    return 10000 * int(phase) + int(component)


PHASE_NAMES = {Phase.PORE: "pore", Phase.ACTIVE: "active", Phase.CBD: "cbd"}


def tag_name(tag: int, phase_names: dict[int, str] | None = None) -> str:
    """Human-readable name of any tag, e.g. ``pore_xmin`` or ``pore|active``."""
    names = {int(k): v for k, v in (phase_names or PHASE_NAMES).items()}
    if 1 <= tag <= MAX_PHASES:
        return names.get(tag, f"phase{tag}")
    if 112 <= tag <= 199:
        a, b = interface_phases(tag)
        return f"{names.get(a, f'phase{a}')}|{names.get(b, f'phase{b}')}"
    if 1010 <= tag < 1100:
        p, f = boundary_phase_face(tag)
        return f"{names.get(p, f'phase{p}')}_{f.name.lower()}"
    if tag >= 10000:
        return f"{names.get(tag // 10000, f'phase{tag // 10000}')}#{tag % 10000}"
    raise ValueError(f"unknown tag {tag}")
