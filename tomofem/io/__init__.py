"""tomofem.io."""
