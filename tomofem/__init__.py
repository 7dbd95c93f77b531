"""tomofem: from 3D tomograms of porous electrodes to verified answers.

Data flows one way: image -> labels -> mesh -> problem -> solution -> quantities.
Importing this package is side-effect free and does not import DOLFINx; the
subpackages that need it import it through :mod:`tomofem._fenics`.
"""

from __future__ import annotations

from tomofem.errors import (
    ConfigError,
    ConvergenceError,
    ImageError,
    MeshingError,
    ParameterError,
    PercolationError,
    ResourceError,
    RunFolderError,
    TomofemError,
)
from tomofem.info import info, versions

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ConvergenceError",
    "ImageError",
    "MeshingError",
    "ParameterError",
    "PercolationError",
    "ResourceError",
    "RunFolderError",
    "TomofemError",
    "__version__",
    "info",
    "versions",
]
