"""lmms-eval plugin: the entry-point hooks (:mod:`.plugin`), the visual-token accounting of
lmms-eval's own wrappers (:mod:`.accounting`) and the ``biores_llava`` lmms-eval model
(:mod:`.biores_llava`). The top of the evaluation side: it may import the task library, the
task authoring room and :mod:`biores_plugin.models`; nothing below imports it.
"""
