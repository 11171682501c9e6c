"""Procedural, offline, resolution-sensitive synthetic biomedical benchmark.

Four generators (puncta, mitosis, fundus, striations) render an image with a *coarse* question
that survives a 4x antialiased downsampling and a *fine* one whose 2.2-2.8 px detail does not.
See docs/synth.md for the table of questions and the dataset layout.
"""

from .cli import add_arguments, run
from .dataset import (
    DEFAULT_N_TEST,
    DEFAULT_N_TRAIN,
    FORMAT_VERSION,
    SPLITS,
    design_labels,
    features,
    is_complete,
    item_seed,
    load_split,
    missing_data_message,
    read_meta,
    write_dataset,
)
from .detect import (
    FINE_THRESHOLDS,
    detect,
    detect_coarse,
    downsample,
    fine_score,
    fit_detector,
)
from .generators import (
    DEFAULT_GENERATORS,
    GENERATOR_VERSION,
    GENERATORS,
    generate_item,
    render_array,
    tokenize,
    vocabulary,
)

__all__ = [
    "DEFAULT_GENERATORS",
    "DEFAULT_N_TEST",
    "DEFAULT_N_TRAIN",
    "FINE_THRESHOLDS",
    "FORMAT_VERSION",
    "GENERATORS",
    "GENERATOR_VERSION",
    "SPLITS",
    "add_arguments",
    "design_labels",
    "detect",
    "detect_coarse",
    "downsample",
    "features",
    "fine_score",
    "fit_detector",
    "generate_item",
    "is_complete",
    "item_seed",
    "load_split",
    "missing_data_message",
    "read_meta",
    "render_array",
    "run",
    "tokenize",
    "vocabulary",
    "write_dataset",
]
