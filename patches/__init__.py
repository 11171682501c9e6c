"""Runtime patches for upstream libraries (installed as ``biores_plugin.patches``)."""
