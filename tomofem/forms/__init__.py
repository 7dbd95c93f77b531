"""tomofem.forms."""
