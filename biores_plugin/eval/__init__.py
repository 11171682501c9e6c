"""Evaluation: the lmms-eval plugin hooks, resolution sweeps, scoring, task folders, ``biores_llava``.

Task folders under ``tasks/`` import only this package. Nothing here imports lmms-eval at
import time except :mod:`.plugin` and :mod:`.biores_llava`, which lmms-eval itself loads.
"""
