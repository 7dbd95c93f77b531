"""tomofem.materials."""
