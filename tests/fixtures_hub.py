"""A hub cache that ``snapshot_download`` finds offline, and a tiny V*-Bench in its hub layout."""

from __future__ import annotations

from pathlib import Path

from fixtures_real import BIG, MID, TALL, Fixture, Row, _hf_image, _to_parquet, image_bytes


def hub_snapshot(hf_home: Path, repo_id: str, revision: str = "0" * 40) -> Path:
    """An (empty) snapshot folder of dataset ``repo_id`` in a hub cache under ``hf_home``, as
    ``huggingface_hub.snapshot_download`` finds it offline (``refs/main`` -> ``revision``)."""
    repo = hf_home / "hub" / f"datasets--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def truncated(data: bytes) -> bytes:
    """An image file cut short: decodes only with ``LOAD_TRUNCATED_IMAGES`` (gray fill)."""
    return data[: len(data) // 2]


def build_vstar(root: Path, truncate: int | None = None) -> Fixture:
    """lmms-lab-encoder/vstar-bench's layout: ``data/test-*.parquet`` with image, text (the
    question with ``(A) .. (D)`` options), label, question_id, category; ``truncate``: the row
    whose image file is cut short."""
    from datasets import Features, Value
    from datasets import Image as HFImage

    items = [
        (BIG, "What is the color of the glove? (A) red (B) blue (C) green (D) white", "A", "direct_attributes"),
        (TALL, "Is the cup to the left or right of the bottle? (A) left (B) right", "B", "relative_position"),
        (MID, "What is the material of the bench? (A) wood (B) metal (C) stone (D) plastic", "C", "direct_attributes"),
    ]
    features = Features(
        {
            "image": HFImage(),
            "text": Value("string"),
            "label": Value("string"),
            "question_id": Value("int64"),
            "category": Value("string"),
        }
    )
    images = [image_bytes(size, 70 + i) for i, (size, *_rest) in enumerate(items)]
    if truncate is not None:
        images[truncate] = truncated(images[truncate])
    columns = {
        "image": [_hf_image(data) for data in images],
        "text": [text for _s, text, _l, _c in items],
        "label": [label for _s, _t, label, _c in items],
        "question_id": list(range(len(items))),
        "category": [category for *_rest, category in items],
    }
    _to_parquet(columns, features, root / "data" / "test-00000-of-00001.parquet")
    rows = [Row(text, label, size) for size, text, label, _c in items]
    return Fixture("biores_vstar_bench", "BIORES_VSTAR_BENCH_PATH", root, rows, multiple_choice=True)
