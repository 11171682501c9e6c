"""Procedural, offline, resolution-sensitive synthetic biomedical benchmark.

Four generators render an image plus two template questions each: a *coarse* question that
survives a 4x antialiased downsampling and a *fine* one whose decisive feature is a zero-mean
grating / dot lattice of period 2.2-2.8 native pixels (erased by the downsampling):

==============  =====  ===================================  ==================================
generator       mode   coarse question (answers)             fine question (yes / no)
==============  =====  ===================================  ==================================
``puncta``      RGB    how many cells are there? (one-four)  do the cells have puncta?
``mitosis``     RGB    are there many nuclei? (yes / no)     is there a mitotic figure?
``fundus``      RGB    which side is the optic disc on?      are there microaneurysms?
``striations``  L      how many cells are there? (one-four)  are the cells striated?
==============  =====  ===================================  ==================================

API: :func:`generate_item`, :func:`vocabulary`, :func:`write_dataset`, :func:`load_split`,
:func:`missing_data_message`, :func:`detect` / :func:`detect_coarse` / :func:`fit_detector`
(reference detectors), and the CLI hook :func:`add_arguments` / :func:`run` (``biores synth``).
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
    "DEFAULT_GENERATORS", "DEFAULT_N_TEST", "DEFAULT_N_TRAIN", "FINE_THRESHOLDS", "FORMAT_VERSION",
    "GENERATORS", "GENERATOR_VERSION", "SPLITS", "add_arguments", "design_labels", "detect",
    "detect_coarse", "downsample", "features", "fine_score", "fit_detector", "generate_item",
    "is_complete", "item_seed", "load_split", "missing_data_message", "read_meta", "render_array",
    "run", "tokenize", "vocabulary", "write_dataset",
]
