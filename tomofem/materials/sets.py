"""Named half-cell parameter sets and key look-up with actionable errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tomofem.errors import ParameterError
from tomofem.materials import electrodes, electrolytes

ELECTRODES: dict[str, Callable[[], dict[str, Any]]] = {
    "nmc811_chen2020": electrodes.nmc811_chen2020,
    "graphite_ecker2015": electrodes.graphite_ecker2015,
}
ELECTROLYTES: dict[str, Callable[[], dict[str, Any]]] = {
    "lipf6_valoen2005": electrolytes.lipf6_valoen2005,
    "lipf6_nyman2008": electrolytes.lipf6_nyman2008,
}


def half_cell(
    electrode: str = "nmc811_chen2020", electrolyte: str = "lipf6_valoen2005"
) -> dict[str, Any]:
    """Parameters of a working electrode against lithium metal.

    Parameters
    ----------
    electrode
        Key of :data:`ELECTRODES` (the active material of the imaged electrode).
    electrolyte
        Key of :data:`ELECTROLYTES` (the liquid filling the pores).

    Returns
    -------
    dict
        Keys with units, e.g. ``"Electrolyte conductivity [S.m-1]"``; laws are
        callables of UFL expressions or arrays. Edit a copy to change a value.
    """
    if electrode not in ELECTRODES:
        raise ParameterError(f"unknown electrode {electrode!r}; choose one of {sorted(ELECTRODES)}")
    if electrolyte not in ELECTROLYTES:
        raise ParameterError(
            f"unknown electrolyte {electrolyte!r}; choose one of {sorted(ELECTROLYTES)}"
        )
    params: dict[str, Any] = {}
    params.update(ELECTROLYTES[electrolyte]())
    params.update(ELECTRODES[electrode]())
    params.update(electrodes.lithium_metal_counter())
    # Carbon-binder domain (three-phase images): used only if the mesh has CBD cells.
    params["CBD conductivity [S.m-1]"] = 10.0
    params["CBD electrolyte transport factor"] = 0.3
    # Volume fraction of electrolyte inside the CBD when it is lumped into the
    # electrolyte (HalfCellConfig.cbd = "electrolyte"): it weights the CBD's salt
    # storage (time derivative and inventory); transport is scaled by the factor above.
    params["CBD porosity"] = 0.5
    return params


def get(params: Mapping[str, Any], key: str) -> Any:
    """``params[key]``, or a :class:`ParameterError` naming the key and the fix."""
    try:
        return params[key]
    except KeyError:
        close = [k for k in params if key.split("[")[0].strip().lower() in k.lower()]
        raise ParameterError(
            f"parameter {key!r} is missing; add it to the parameter mapping"
            + (f" (similar keys: {close})" if close else "")
        ) from None
