"""Training at native, fixed and mixed resolution (``biores-train``)."""
