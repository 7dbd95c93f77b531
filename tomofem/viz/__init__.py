"""tomofem.viz."""
