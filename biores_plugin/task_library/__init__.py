"""The task library the task folders under ``tasks/`` import: checked images, resolution sweeps,
scoring, published protocols, the runtime of wrapped sweeps. It imports neither lmms-eval at
import time nor any higher room (task authoring, the lmms-eval plugin).
"""
