"""Parameter sets and material laws (pure functions of UFL expressions or arrays)."""

from tomofem.materials.constants import FARADAY, GAS_CONSTANT, T_REF
from tomofem.materials.sets import ELECTRODES, ELECTROLYTES, get, half_cell

__all__ = ["ELECTRODES", "ELECTROLYTES", "FARADAY", "GAS_CONSTANT", "T_REF", "get", "half_cell"]
