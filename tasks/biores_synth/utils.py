"""biores_synth: the offline, procedural, resolution-sensitive benchmark.

Each row is one question about one generated image (fluorescence puncta, H&E mitosis,
fundus microaneurysms, striated cells): a *fine* question whose decisive detail vanishes
below its critical scale, and a *coarse* one answerable at low resolution. The answer is one
word from ``options``; scoring takes the first option named in the response.
"""

from biores_plugin.task_library.synth import (  # noqa: F401  (yaml !function targets)
    __getattr__,
    aggregate_accuracy,
    aggregate_coarse,
    aggregate_fine,
    aggregate_skipped,
    doc_to_messages,
    doc_to_text,
    doc_to_visual,
    process_results,
)
