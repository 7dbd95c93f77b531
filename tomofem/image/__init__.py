"""tomofem.image: from voxels to a trustworthy label field and its morphology.

Modules (import the one you need; the heavy ones load scikit-learn lazily):

* :mod:`~tomofem.image.io` -- read TIFF/raw/npy/HDF5 into a :class:`Volume`; the real electrode.
* :mod:`~tomofem.image.synthetic` -- seeded microstructures in physical units.
* :mod:`~tomofem.image.phantoms` -- exact level-set microstructures and an imaging model.
* :mod:`~tomofem.image.connectivity` -- clusters, percolation per axis, isolated-cluster removal.
* :mod:`~tomofem.image.denoise`, :mod:`~tomofem.image.segment` -- NLM, thresholds, GMM, forest.
* :mod:`~tomofem.image.clean` -- morphological cleanup with reports.
* :mod:`~tomofem.image.metrics` -- volume fractions, surface areas, PSD, correlations, chords.
* :mod:`~tomofem.image.uncertainty` -- segmentation ensembles from a posterior.

Label images hold label indices ``0 = pore, 1 = solid/active, 2 = CBD``; index
``i`` maps to the mesh tag ``tomofem.tags.phase_id(i)``.
"""

from tomofem.image.io import Volume, load_electrode, read_volume

__all__ = ["Volume", "load_electrode", "read_volume"]
