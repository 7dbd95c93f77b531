"""tomofem.meshing."""
