"""Physical constants (CODATA 2018, exact in the 2019 SI)."""

FARADAY = 96485.33212
"""Faraday constant [C.mol-1]."""

GAS_CONSTANT = 8.314462618
"""Molar gas constant [J.mol-1.K-1]."""

T_REF = 298.15
"""Reference temperature of the parameter sets [K]."""
