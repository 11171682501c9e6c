"""Task authoring: write sweep folders (:mod:`.taskgen`), wrap any lmms-eval task into a sweep
(:mod:`.wrap`), export a self-contained task folder (:mod:`.export`). Imports the task library.
"""
