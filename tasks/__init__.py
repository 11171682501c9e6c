"""lmms-eval task folders shipped with biores (installed as ``biores_plugin.tasks``)."""
