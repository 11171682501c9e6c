"""Training data: LLaVA conversation JSON or a biores synth folder, at native, fixed or mixed
resolution; a collator that keeps differently sized images as a list; a token-count sampler.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from ..errors import BioresConfigError
from ..resolution import downsample, effective_size


@dataclass
class Record:
    """One training conversation: image source, prompt turns and answers."""

    image: Any  # path, bytes, PIL image or None
    turns: list[tuple[str, str, str]]  # (human prompt, assistant answer, question type for --answer_loss_weights)
    size: tuple[int, int]  # native (width, height), header-read


def _synth_records(
    root: Path, split: str = "train", limit: Optional[int] = None, group_turns: bool = True
) -> list[Record]:
    """Rows of a biores synth folder, prompted exactly as the biores_synth task prompts them.

    With ``group_turns`` the questions about one image form one multi-turn conversation in a
    seeded random order (LLaVA's own data style: every image supervises all its answers).
    """
    import datasets

    from ..synth.dataset import read_meta

    read_meta(root)  # one-line error with the create command when incomplete
    table = datasets.load_dataset("parquet", data_files={split: str(root / f"{split}.parquet")}, split=split)
    table = table.cast_column("image", datasets.Image(decode=False))
    from ..synth.prompts import question_prompt

    grouped: dict[tuple[str, int], Record] = {}
    records: list[Record] = []
    for row in table:
        turn = (question_prompt(row), row["answer"], row["question_type"])
        key = (row["generator"], int(row["index"]))
        if group_turns and key in grouped:
            grouped[key].turns.append(turn)
            continue
        record = Record(row["image"]["bytes"], [turn], (row["native_width"], row["native_height"]))
        grouped[key] = record
        records.append(record)
    if group_turns:
        for i, record in enumerate(records):
            order = np.random.default_rng([0xC0FFEE, i]).permutation(len(record.turns))
            record.turns = [record.turns[j] for j in order]
    return records[:limit] if limit is not None else records


def _llava_records(path: Path, image_folder: Optional[str], limit: Optional[int] = None) -> list[Record]:
    """LLaVA's conversation JSON: ``[{"image": "x.png", "conversations": [{"from": "human", ...}]}]``."""
    from ..image_io import image_size

    try:
        items = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BioresConfigError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(items, list):
        raise BioresConfigError(f"{path} must hold a list of conversations")
    records = []
    for i, item in enumerate(items[:limit] if limit else items):
        if not isinstance(item, dict):
            raise BioresConfigError(
                f'{path}: entry {i} is a {type(item).__name__}, not a conversation object ({{"image": ..., '
                f'"conversations": [...]}})'
            )
        convo = item.get("conversations") or []
        turns, pending = [], None
        kind = str(item.get("question_type", ""))
        for message in convo:
            who, text = message.get("from"), str(message.get("value", ""))
            if who in ("human", "user"):
                pending = text
            elif who in ("gpt", "assistant") and pending is not None:
                turns.append((pending, text, kind))
                pending = None
        if not turns:
            raise BioresConfigError(f"{path}: conversation {i} has no human/gpt turn pair")
        image = item.get("image")
        size = (0, 0)
        if image is not None:
            image = str(Path(image_folder or path.parent) / image)
            size = image_size(image)
        records.append(Record(image, turns, size))
    return records


def synth_root(data_path: str) -> Optional[Path]:
    """The folder of the biores synth dataset ``data_path`` names (``synth:DIR``, or a folder with
    ``meta.json``), else ``None``."""
    text = str(data_path)
    if text.startswith("synth:"):
        return Path(text[len("synth:") :])
    path = Path(text)
    return path if path.is_dir() and (path / "meta.json").is_file() else None


def load_records(data_path: str, image_folder: Optional[str] = None, limit: Optional[int] = None) -> list[Record]:
    root = synth_root(data_path)
    if root is not None:
        return _synth_records(root, limit=limit)
    path = Path(str(data_path))
    if path.is_dir():
        raise BioresConfigError(f"{path} is a folder but not a biores synth dataset (no meta.json)")
    if not path.is_file():
        raise BioresConfigError(f"--data_path {path} does not exist")
    return _llava_records(path, image_folder, limit)


def cache_bytes(cache_mb: float) -> int:
    """``--sample_cache_mb`` in bytes; a negative or NaN value is a one-line error."""
    if not cache_mb >= 0:
        raise BioresConfigError(f"--sample_cache_mb must be >= 0, got {cache_mb}")
    return int(cache_mb * 2**20)


class SampleCache:
    """Prepared samples (token ids, pixel tensors) kept in memory up to ``cache_mb`` (least recently used out first),
    so a sample seen again in a later epoch is not decoded, resized and tokenised again. A sample is a pure function
    of its record and its drawn resolution, so a hit is exactly what preparing it again would give. ``0`` keeps
    nothing. Each dataloader worker holds its own cache (``--dataloader_num_workers`` multiplies the memory)."""

    def __init__(self, cache_mb: float = 0.0):
        self.limit, self.used, self.hits, self.misses = cache_bytes(cache_mb), 0, 0, 0
        self._items: OrderedDict[Any, tuple[dict[str, Any], int]] = OrderedDict()

    @staticmethod
    def _bytes(sample: dict[str, Any]) -> int:
        tensors = [t for v in sample.values() for t in (v if isinstance(v, list) else [v]) if torch.is_tensor(t)]
        return sum(t.numel() * t.element_size() for t in tensors)

    def get(self, key: Any) -> Optional[dict[str, Any]]:
        if not self.limit:
            return None
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[0]

    def put(self, key: Any, sample: dict[str, Any]) -> bool:
        """Keep ``sample`` (the cache owns it from now on); returns whether it was kept."""
        if not self.limit or key in self._items:
            return False
        size = self._bytes(sample)
        if size > self.limit:
            return False
        self._items[key] = (sample, size)
        self.used += size
        while self.used > self.limit:
            _, (_, gone) = self._items.popitem(last=False)
            self.used -= gone
        return True


def _fresh(sample: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``sample`` whose tensors (and lists of tensors) are new."""
    out: dict[str, Any] = {}
    for key, value in sample.items():
        if isinstance(value, list):
            out[key] = [t.clone() if torch.is_tensor(t) else t for t in value]
        else:
            out[key] = value.clone() if torch.is_tensor(value) else value
    return out


class ResolutionDataset(Dataset):
    """Tokenised samples with their image at the drawn training resolution."""

    def __init__(
        self,
        records: Sequence[Record],
        processor: Any,
        draws: Sequence[int],
        weights: dict[str, float],
        max_length: int = 2048,
        cache_mb: float = 0.0,
    ):
        if len(records) != len(draws):
            raise ValueError("one draw per record")
        self.cache = SampleCache(cache_mb)
        self.records, self.processor, self.draws, self.weights, self.max_length = (
            list(records),
            processor,
            list(draws),
            weights,
            max_length,
        )
        tokenizer = processor.tokenizer
        self.eos = tokenizer.eos_token_id
        self._text_lengths = [
            sum(len(tokenizer(p + " " + a, add_special_tokens=False)["input_ids"]) + 1 for p, a, _ in r.turns)
            for r in self.records
        ]

    def __len__(self) -> int:
        return len(self.records)

    def visual_tokens(self, index: int) -> int:
        record = self.records[index]
        if record.image is None:
            return 0
        w, h = effective_size(*record.size, self.draws[index])
        return self.processor.policy.visual_tokens(w, h)

    def token_count(self, index: int) -> int:
        """Total tokens of a sample (text + visual), known without decoding pixels."""
        return self._text_lengths[index] + self.visual_tokens(index)

    def _image(self, record: Record, resolution: int) -> Image.Image:
        from ..image_io import load_image

        return downsample(load_image(record.image), resolution)

    def __getitem__(self, index: int) -> dict[str, Any]:
        key = (index, self.draws[index])
        sample = self.cache.get(key)
        if sample is None:
            sample = self._sample(index)
            if not self.cache.put(key, sample):
                return sample  # not kept (cache off, or this sample alone exceeds it): no copy needed
        return _fresh(sample)  # the caller may change what it gets; the cache keeps its own

    def _sample(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        tokenizer = self.processor.tokenizer
        images = [self._image(record, self.draws[index])] if record.image is not None else []
        processed = self.processor.process_images(images)
        counts = [int(c) for c in processed["num_visual_tokens"]]
        input_ids: list[int] = []
        labels: list[int] = []
        weights: list[float] = []
        for turn, (prompt, answer, kind) in enumerate(record.turns):
            weight = self.weights.get(kind, 1.0)
            if turn == 0:  # the same prompt builder biores_llava evaluates with
                prompt = self.processor.expand_prompt(self.processor.build_prompt(prompt, len(images)), counts)
            p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            a_ids = tokenizer(" " + answer, add_special_tokens=False)["input_ids"] + [self.eos]
            input_ids += p_ids + a_ids
            labels += [-100] * len(p_ids) + a_ids
            weights += [0.0] * len(p_ids) + [weight] * len(a_ids)
        if len(input_ids) > self.max_length:
            raise BioresConfigError(
                f"sample {index} has {len(input_ids)} tokens > model_max_length {self.max_length}; lower --max_pixels"
            )
        return {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "loss_weights": torch.tensor(weights, dtype=torch.float32),
            "pixel_values": list(processed["pixel_values"]),
            "visual_tokens": sum(counts),
            "resolution": self.draws[index],
        }


class ImageListCollator:
    """Right-pads text; keeps images as one flat list (different sizes meet in one batch)."""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        longest = max(len(f["input_ids"]) for f in features)

        def pad(key: str, value: Any) -> torch.Tensor:
            return torch.stack(
                [torch.cat([f[key], f[key].new_full((longest - len(f[key]),), value)]) for f in features]
            )

        input_ids = pad("input_ids", self.pad)
        pixel_values = [p for f in features for p in f["pixel_values"]]
        return {
            "input_ids": input_ids,
            "attention_mask": (
                torch.arange(longest)[None, :] < torch.tensor([len(f["input_ids"]) for f in features])[:, None]
            ).long(),
            "labels": pad("labels", -100),
            "loss_weights": pad("loss_weights", 0.0),
            "pixel_values": pixel_values or None,
            "visual_tokens": torch.tensor([f["visual_tokens"] for f in features], dtype=torch.long),
        }


class TokenCountGroupedSampler(Sampler[int]):
    """Shuffled (seed + epoch), then grouped so each batch holds samples of similar token count.

    Megabatches of ``batch_size * group_factor`` samples are sorted by total tokens (text +
    visual) and cut into batches, whose order is shuffled again: little padding, no long tail.
    """

    def __init__(self, token_counts: Sequence[int], batch_size: int, seed: int = 0, group_factor: int = 8):
        self.counts = list(token_counts)
        self.batch_size = max(1, int(batch_size))
        self.seed = int(seed)
        self.group = max(1, int(group_factor))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.counts)

    def order(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        perm = torch.randperm(len(self.counts), generator=g).tolist()
        mega = self.batch_size * self.group
        batches: list[list[int]] = []
        for start in range(0, len(perm), mega):
            chunk = sorted(perm[start : start + mega], key=lambda i: -self.counts[i])
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        # keep full batches first so a ragged remainder never lands mid-epoch
        full = [b for b in batches if len(b) == self.batch_size]
        rest = [b for b in batches if len(b) != self.batch_size]
        shuffle = torch.randperm(len(full), generator=g).tolist()
        return [i for k in shuffle for i in full[k]] + [i for b in rest for i in b]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self.epoch))
