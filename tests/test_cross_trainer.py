"""The same resolution flags give the same draws and the same pixels on both trainers.

The original-LLaVA path (llava's own ``LazySupervisedDataset`` behind the hooked
``make_supervised_data_module``, its ``NativeLlavaImageProcessor`` over a real ``CLIPImageProcessor``)
and ``biores-train``'s path (``ResolutionDataset`` + ``BioresLlavaProcessor``, same mean/std) parse
the same command line; every sample must get the same level and exactly the same pixel tensor.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from test_llava_original import write_conversations  # the same LLaVA conversation JSON + images

MIXED, SEED, PATCH = "native:0.5,64:0.5", 3, 14
# (width, height): larger and smaller than the 64 px cap, square, very wide, below the pixel budget
SIZES = [(200, 120), (50, 90), (64, 64), (300, 40), (33, 47), (120, 260), (90, 90), (40, 30)]
ANSWERS = ["a round nucleus", "two cells", "no", "a blue stain", "yes", "striated muscle", "no", "yes"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cross_trainer")
    write_conversations(root, SIZES, ANSWERS, seed=11, name="data.json")
    return root


def _argv(root: Path, out: Path) -> list[str]:
    return [
        "--image_aspect_ratio",
        "native",
        "--mixed_resolution",
        MIXED,
        "--seed",
        str(SEED),
        "--data_path",
        str(root / "data.json"),
        "--image_folder",
        str(root / "imgs"),
        "--output_dir",
        str(out),
    ]


def _llava_path(argv: list[str], base, log_path: Path, monkeypatch) -> tuple[list[torch.Tensor], dict, list]:
    """Pixels, logged draw labels per index and the collated image list of llava's own dataset."""
    from llava import conversation as conversation_lib

    from biores_plugin.original_llava import hooks, shims
    from biores_plugin.original_llava import state as llava_state
    from biores_plugin.original_llava.processor import NativeLlavaImageProcessor
    from biores_plugin.original_llava.train import parse_and_validate
    from biores_plugin.tiny import build_word_tokenizer

    train_module = shims.import_llava_train()
    hooks.install_hooks(train_module)
    _, data_args, training_args, resolution = parse_and_validate(argv, train_module)
    state = hooks.NativeState(
        resolution, seed=training_args.seed, log_path=log_path
    )  # as biores_plugin.original_llava.train does
    state.set_patch_size(PATCH)  # what the trainer hook takes from the vision tower
    data_args.image_processor, data_args.is_multimodal, data_args.mm_use_im_start_end = base, True, False
    monkeypatch.setattr(conversation_lib, "default_conversation", conversation_lib.conv_templates["plain"])
    words = {w for a in ANSWERS for w in a.split()} | {"what", "is", "shown"}
    previous = (llava_state.active_state(), llava_state.config_extras())
    hooks.activate(state)
    try:
        module = train_module.make_supervised_data_module(tokenizer=build_word_tokenizer(words), data_args=data_args)
        assert isinstance(data_args.image_processor, NativeLlavaImageProcessor)
        dataset = module["train_dataset"]
        pixels = [dataset[i]["image"] for i in range(len(dataset))]  # the hooked __getitem__ sets the index
        collated = module["data_collator"]([dataset[i] for i in range(3)])["images"]
    finally:
        hooks.activate(*previous)
    labels = defaultdict(set)
    for record in map(json.loads, log_path.read_text().splitlines()):
        if record["event"] == "draw":
            labels[record["index"]].add(record["choice"])
    return pixels, {"labels": labels, "resolution": state.resolution, "draws": state.mixed.draws(len(SIZES))}, collated


def _biores_train_path(argv: list[str], base) -> tuple[list[torch.Tensor], dict, list]:
    """Pixels, draws and the collated image list of ``biores-train``'s dataset (built as its trainer does)."""
    from biores_plugin.models.native_llava import BioresLlavaProcessor
    from biores_plugin.tiny import build_word_tokenizer
    from biores_plugin.train.args import parse_args
    from biores_plugin.train.data import ImageListCollator, ResolutionDataset, load_records
    from biores_plugin.train.trainer import vocabulary_of

    _, data_args, training_args = parse_args(argv)
    records = load_records(data_args.data_path, data_args.image_folder)
    tokenizer = build_word_tokenizer(vocabulary_of(records))
    processor = BioresLlavaProcessor(
        tokenizer, data_args.resolution(PATCH), image_mean=base.image_mean, image_std=base.image_std
    )
    draws = processor.resolution.mixed(training_args.seed).draws(len(records))
    dataset = ResolutionDataset(records, processor, draws, {}, training_args.model_max_length)
    samples = [dataset[i] for i in range(len(dataset))]
    assert [s["resolution"] for s in samples] == draws
    collated = ImageListCollator(tokenizer.pad_token_id)(samples[:3])["pixel_values"]
    return [s["pixel_values"][0] for s in samples], {"resolution": processor.resolution, "draws": draws}, collated


def test_both_trainers_draw_and_resize_identically(data, tmp_path, monkeypatch):
    from transformers import CLIPImageProcessor

    from biores_plugin.original_llava import hooks, shims
    from biores_plugin.resolution import NATIVE, resolution_label

    before = (hooks.installed_hooks(), shims.applied_shims())
    base = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})  # CLIP mean/std
    argv = _argv(data, tmp_path / "out")
    try:
        llava_pixels, llava, llava_batch = _llava_path(argv, base, tmp_path / "llava.jsonl", monkeypatch)
    finally:  # leave the process as it was (the hooks and shims are removable)
        if not before[0]:
            hooks.uninstall_hooks()
        if not before[1]:
            shims.revert_shims()
    train_pixels, train, train_batch = _biores_train_path(argv, base)

    assert llava["resolution"].to_dict() == train["resolution"].to_dict()  # one config from the same flags
    draws = train["draws"]
    assert llava["draws"] == draws and set(draws) == {NATIVE, 64}
    assert {i: {resolution_label(d)} for i, d in enumerate(draws)} == dict(llava["labels"])  # what llava really used
    assert any(d == 64 and max(SIZES[i]) > 64 for i, d in enumerate(draws))  # the cap really resizes
    assert len({tuple(p.shape) for p in train_pixels}) > 3
    for i, (a, b) in enumerate(zip(llava_pixels, train_pixels)):
        assert a.dtype == b.dtype == torch.float32
        assert torch.equal(a, b), (i, SIZES[i], draws[i], tuple(a.shape), tuple(b.shape))
    assert isinstance(llava_batch, list) and len(llava_batch) == len(train_batch) == 3
    assert all(torch.equal(a, b) for a, b in zip(llava_batch, train_batch))
