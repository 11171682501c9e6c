"""A tiny local lmms-eval task (``acct_probe``) for runs through the real CLI: one parquet of
images of given sizes, each prompt naming its doc (``Doc <i>: ...``, of varied lengths so
lmms-eval's wrappers re-sort the requests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

UTILS = """
def doc_to_visual(doc):
    return [doc["image"].convert("RGB")]


def doc_to_text(doc):
    return doc["question"]


def process_results(doc, results):
    return {"acc": float(results[0].strip().lower() == doc["answer"])}
"""

YAML = """task: acct_probe
dataset_path: parquet
dataset_kwargs:
  data_files:
    test: data.parquet
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: answer
generation_kwargs:
  max_new_tokens: 2
  temperature: 0
process_results: !function utils.process_results
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def write_probe_task(folder: Path, sizes: list[tuple[int, int]], n_docs: int) -> Path:
    """Write the task folder (``--include_path folder``); doc ``i`` has an image of ``sizes[i % len(sizes)]``."""
    import datasets
    from PIL import Image

    rng = np.random.default_rng(0)
    rows: dict[str, list] = {"image": [], "question": [], "answer": []}
    for i in range(n_docs):
        w, h = sizes[i % len(sizes)]
        rows["image"].append(Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)))
        rows["question"].append(f"Doc {i}: what is shown?" + " answer" * (i % 5))
        rows["answer"].append("yes")
    folder = Path(folder)
    folder.mkdir(parents=True)
    datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()).to_parquet(str(folder / "data.parquet"))
    (folder / "utils.py").write_text(UTILS)
    (folder / "acct_probe.yaml").write_text(YAML)
    return folder
