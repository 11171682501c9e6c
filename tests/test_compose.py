"""LLaVA composed from a pretrained LM folder and a tower folder: stage 1 (projector only), stage 2
from its mm_projector.bin, a stock checkpoint evaluated by lmms-eval's llava_hf and biores_llava."""

from __future__ import annotations

import json
import math
from pathlib import Path

import fixtures_models
import pytest
import torch
from conftest import run_lmms_eval
from train_flags import CPU_RUN


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compose")
    out = {f"lm-{a}": fixtures_models.build_lm(root, a) for a in ("llama", "qwen2")}
    out.update({k: fixtures_models.build_tower(root, k) for k in ("clip", "siglip", "siglip2")})
    return out


def _flags(lm: Path, tower: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path",
        str(lm),
        "--vision_tower",
        str(tower),
        "--data_path",
        f"synth:{data}",
        "--output_dir",
        str(out),
        "--per_device_train_batch_size",
        "4",
        "--learning_rate",
        "2e-3",
        "--logging_steps",
        "1",
        *CPU_RUN,
        "--save_strategy",
        "no",
        *extra,
    ]


_LEGACY = (
    ("language_model.model.", "model.language_model."),
    ("language_model.lm_head.", "lm_head."),
    ("multi_modal_projector.", "model.multi_modal_projector."),
    ("vision_tower.", "model.vision_tower."),
)


def current_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A LLaVA state dict under transformers 5's module names (``save_pretrained`` writes the legacy ones)."""

    def rename(key: str) -> str:
        return next((new + key[len(old) :] for old, new in _LEGACY if key.startswith(old)), key)

    return {rename(k): v for k, v in state.items()}


def _state(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return current_layout(load_file(str(folder / "model.safetensors")))


def _strict_stock(folder: Path):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model, info = LlavaForConditionalGeneration.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["LlavaForConditionalGeneration"]
    processor = AutoProcessor.from_pretrained(folder)
    assert type(processor).__name__ == "LlavaProcessor"
    return model, processor


@pytest.fixture(scope="module")
def stages(parts, synth_small, tmp_path_factory):
    """Stage 1 (projector only, fixed 56 px) then stage 2 (everything, mixed native resolution)."""
    from biores_plugin.train.trainer import train

    root = tmp_path_factory.mktemp("stages")
    s1 = train(
        _flags(
            parts["lm-llama"],
            parts["clip"],
            synth_small,
            root / "stage1",
            "--version",
            "v1",
            "--tune_mm_mlp_adapter",
            "True",
            "--image_aspect_ratio",
            "pad",
            "--max_steps",
            "4",
        )
    )
    s2 = train(
        _flags(
            parts["lm-llama"],
            parts["clip"],
            synth_small,
            root / "stage2",
            "--version",
            "v1",
            "--pretrain_mm_mlp_adapter",
            str(root / "stage1" / "mm_projector.bin"),
            "--image_aspect_ratio",
            "native",
            "--max_pixels",
            "40000",
            "--mixed_resolution",
            "native:0.5,112:0.5",
            "--max_steps",
            "4",
        )
    )
    return root, s1, s2


def test_stage1_trains_only_the_projector(stages, parts):
    root, s1, _ = stages
    saved, lm, tower = _state(root / "stage1"), _state(parts["lm-llama"]), _state(parts["clip"])
    projector = {k: v for k, v in saved.items() if "multi_modal_projector" in k}
    assert s1["trainable_parameters"] == sum(v.numel() for v in projector.values())
    for key, value in lm.items():  # the language model is the pretrained one, untouched
        name = key.replace("model.", "model.language_model.", 1) if key.startswith("model.") else key
        assert torch.equal(saved[name], value), key
    for key, value in tower.items():
        assert torch.equal(saved[f"model.vision_tower.{key}"], value), key
    bin_ = torch.load(root / "stage1" / "mm_projector.bin", weights_only=True)
    assert sorted(bin_) == [
        "model.mm_projector.0.bias",
        "model.mm_projector.0.weight",
        "model.mm_projector.2.bias",
        "model.mm_projector.2.weight",
    ]
    assert torch.equal(bin_["model.mm_projector.2.weight"], saved["model.multi_modal_projector.linear_2.weight"])
    assert math.isfinite(s1["last_logged_loss"])


def test_stage2_starts_from_the_stage1_projector(stages, parts, synth_small, tmp_path):
    from biores_plugin.train.args import DataArguments, ModelArguments
    from biores_plugin.train.compose import compose_llava

    root, _, s2 = stages
    model, _ = compose_llava(
        ModelArguments(
            model_name_or_path=str(parts["lm-llama"]),
            vision_tower=str(parts["clip"]),
            version="v1",
            pretrain_mm_mlp_adapter=str(root / "stage1" / "mm_projector.bin"),
        ),
        DataArguments(data_path="x"),
        0,
    )
    stage1 = _state(root / "stage1")
    assert torch.equal(
        model.model.multi_modal_projector.linear_1.weight, stage1["model.multi_modal_projector.linear_1.weight"]
    )
    draws = json.loads((root / "stage2" / "resolution_draws.json").read_text())
    assert set(draws["counts"]) == {"native", "112"} and s2["global_step"] == 4
    assert s2["trainable_parameters"] == sum(v.numel() for v in _state(root / "stage2").values())  # everything trains


def test_stage2_is_a_stock_llava_evaluated_by_llava_hf(stages, parts, synth_small):
    root, _, _ = stages
    model, processor = _strict_stock(root / "stage2")
    # the prompt llava_hf's chat path renders is the one training used
    from biores_plugin.models.native_llava import BioresLlavaProcessor

    structured = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "how many?"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    trained = BioresLlavaProcessor.from_pretrained(root / "stage2").build_prompt("how many?", 1)
    assert structured == trained and structured.endswith("USER: <image>\nhow many? ASSISTANT:")
    # token for token: a training sample's prompt is what LlavaProcessor feeds the model (BOS included)
    from PIL import Image

    from biores_plugin.train.args import DataArguments, ModelArguments
    from biores_plugin.train.compose import compose_llava
    from biores_plugin.train.data import Record, ResolutionDataset

    _, train_proc = compose_llava(
        ModelArguments(model_name_or_path=str(parts["lm-llama"]), vision_tower=str(parts["clip"]), version="v1"),
        DataArguments(data_path="x", image_aspect_ratio="pad"),
        0,
    )
    image = Image.new("RGB", (56, 56), (200, 10, 10))
    item = ResolutionDataset([Record(image, [("how many?", "two", "")], (56, 56))], train_proc, [0], {})[0]
    stock = processor(images=[image], text=structured, return_tensors="pt")["input_ids"][0]
    answer = train_proc.tokenizer(" two", add_special_tokens=False)["input_ids"] + [train_proc.tokenizer.eos_token_id]
    assert item["input_ids"].tolist() == stock.tolist() + answer
    out = root / "lmms_hf" / "out"
    out.parent.mkdir()
    results = run_lmms_eval(
        [
            "--model",
            "llava_hf",
            "--model_args",
            f"pretrained={root / 'stage2'},device=cpu,device_map=cpu",
            "--tasks",
            "biores_synth_224,biores_synth_native",
            "--limit",
            "3",
        ],
        out,
        env={"BIORES_SYNTH_PATH": str(synth_small)},
    )
    for task in ("biores_synth_224", "biores_synth_native"):
        assert results["n-samples"][task]["effective"] == 3
        assert 0.0 <= results["results"][task]["accuracy,none"] <= 1.0


def test_stage2_loads_natively_in_biores_llava(stages, synth_small):
    root, _, _ = stages
    out = root / "lmms_native" / "out"
    out.parent.mkdir()
    results = run_lmms_eval(
        [
            "--model",
            "biores_llava",
            "--model_args",
            f"pretrained={root / 'stage2'},device=cpu",
            "--tasks",
            "biores_synth_native",
            "--limit",
            "3",
        ],
        out,
        env={"BIORES_SYNTH_PATH": str(synth_small)},
    )
    assert results["n-samples"]["biores_synth_native"]["effective"] == 3


@pytest.mark.parametrize(
    "tower, lm, version, resolution",
    [
        ("siglip", "lm-qwen2", "qwen_2", ["--image_aspect_ratio", "native", "--max_pixels", "40000"]),
        ("siglip2", "lm-qwen2", "template", ["--image_aspect_ratio", "pad"]),
        (
            "clip",
            "lm-qwen2",
            "llama_3",
            ["--image_aspect_ratio", "native", "--mixed_resolution", "native:0.5,84:0.5", "--max_pixels", "40000"],
        ),
        ("siglip", "lm-llama", "plain", ["--image_aspect_ratio", "native", "--max_pixels", "40000"]),
    ],
)
def test_towers_templates_and_resolutions(parts, synth_small, tmp_path, tower, lm, version, resolution):
    from PIL import Image

    from biores_plugin.train.trainer import train

    stats = train(
        _flags(
            parts[lm],
            parts[tower],
            synth_small,
            tmp_path / "run",
            "--version",
            version,
            "--max_steps",
            "2",
            *resolution,
        )
    )
    assert stats["global_step"] == 2
    model, processor = _strict_stock(tmp_path / "run")
    assert model.config.vision_feature_select_strategy == ("default" if tower == "clip" else "full")
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "how many?"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    inputs = processor(images=[Image.new("RGB", (90, 70), (120, 30, 200))], text=prompt, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits  # the stock processor's image-token count fits the stock model
    assert torch.isfinite(logits).all()


def test_llava_templates_render_string_and_structured_content_alike():
    from jinja2 import Template

    from biores_plugin.train.compose import TEMPLATES, chat_template

    for version in TEMPLATES:
        template = Template(chat_template(version))
        plain = template.render(
            messages=[{"role": "user", "content": "<image>\nQ?"}], add_generation_prompt=True, eos_token="</s>"
        )
        parts = template.render(
            messages=[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q?"}]}],
            add_generation_prompt=True,
            eos_token="</s>",
        )
        assert plain == parts and "<image>\nQ?" in plain
    vicuna = Template(chat_template("v1")).render(
        messages=[{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], eos_token="</s>"
    )
    assert vicuna.endswith("questions. USER: Q ASSISTANT: A</s>")  # LLaVA's conv_vicuna_v1


@pytest.mark.parametrize("layout", ["legacy", "current"])
def test_continue_from_a_stock_llava_checkpoint(tmp_path, synth_small, layout):
    """llava-hf's legacy key layout and the current one both load whole, and a stock input stays
    stock (learning rate 0: every saved weight equals the input's)."""
    from PIL import Image

    from biores_plugin.train.args import DataArguments, ModelArguments
    from biores_plugin.train.data import Record, ResolutionDataset
    from biores_plugin.train.trainer import build_model_and_processor, train

    source = fixtures_models.build_llava(tmp_path, layout)
    out = tmp_path / "run"
    train(
        [
            "--model_name_or_path",
            str(source),
            "--data_path",
            f"synth:{synth_small}",
            "--output_dir",
            str(out),
            "--image_aspect_ratio",
            "native",
            "--max_pixels",
            "40000",
            "--per_device_train_batch_size",
            "2",
            "--learning_rate",
            "0",
            "--max_steps",
            "1",
            "--report_to",
            "none",
            "--disable_tqdm",
            "true",
            "--use_cpu",
            "true",
            "--save_strategy",
            "no",
        ]
    )
    before, _ = _strict_stock(source)
    after, processor = _strict_stock(out)
    reference = before.state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in after.state_dict().items())
    # the training prompt (the checkpoint's own hub template) is the stock processor's, token for token
    _, train_proc = build_model_and_processor(
        ModelArguments(model_name_or_path=str(source)), DataArguments(data_path="x", image_aspect_ratio="pad"), [], 0
    )
    image = Image.new("RGB", (56, 56), (0, 90, 10))
    item = ResolutionDataset([Record(image, [("how many?", "two", "")], (56, 56))], train_proc, [0], {})[0]
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "how many?"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    stock = processor(images=[image], text=text, return_tensors="pt")["input_ids"][0].tolist()
    assert item["input_ids"].tolist()[: len(stock)] == stock
