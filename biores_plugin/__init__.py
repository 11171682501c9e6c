"""biores: native- and mixed-resolution biomedical multimodal LLMs.

Data flows image -> resolution policy -> processor -> vision tower -> language model:

- :mod:`biores_plugin.image_io`   load any biomedical image into a checked RGB/channel array
- :mod:`biores_plugin.policy`     pure resolution policies (fixed, anyres, native, downsample)
- :mod:`biores_plugin.processing` transformers-compatible image processors
"""

__version__ = "0.1.0"
