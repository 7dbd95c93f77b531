"""tomofem.homogenization: effective tensors, tortuosity, bounds, RVE studies, baselines.

Modules (import the one you need; those marked * load DOLFINx):

* :mod:`~tomofem.homogenization.results` -- result records and the length/area convention
  (tau = eps k / k_eff, L = box edge; a straight channel gives tau = 1).
* :mod:`~tomofem.homogenization.bounds` -- Voigt/Reuss, Hashin-Shtrikman, Bruggeman fit,
  the automatic bounds check.
* :mod:`~tomofem.homogenization.voxel_fvm` -- 7-point voxel FVM (6/26 connectivity,
  contact films), parallel, the published-method baseline.
* :mod:`~tomofem.homogenization.random_walk` -- blind-ant MSD diffusivity tensor.
* :mod:`~tomofem.homogenization.lbm` -- D3Q19 TRT lattice-Boltzmann tortuosity (18-connected).
* :mod:`~tomofem.homogenization.rve` -- sub-volume statistics and L_RVE.
* :mod:`~tomofem.homogenization.uncertainty` -- tau interval over sampled segmentations.
* :mod:`~tomofem.homogenization.tortuosity` * -- through-thickness FEM with percolation.
* :mod:`~tomofem.homogenization.tensor` * -- full tensor, periodic / Dirichlet / flux BCs.
* :mod:`~tomofem.homogenization.contact` * -- thin-film contact resistance on interfaces.
* :mod:`~tomofem.homogenization.thermal` * -- conductivity, heat capacity, heat source.
* :mod:`~tomofem.homogenization.verification` * -- laminates and SC sphere cells with tags.
"""

from tomofem.homogenization.bounds import check_bounds, fit_bruggeman, hashin_shtrikman
from tomofem.homogenization.lbm import tortuosity_lbm
from tomofem.homogenization.results import TensorResult, TortuosityResult
from tomofem.homogenization.voxel_fvm import effective_conductivity_voxel, tortuosity_voxel

__all__ = [
    "TensorResult",
    "TortuosityResult",
    "check_bounds",
    "effective_conductivity_voxel",
    "fit_bruggeman",
    "hashin_shtrikman",
    "tortuosity_lbm",
    "tortuosity_voxel",
]
