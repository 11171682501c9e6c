"""Stock HF checkpoints (tiny random fixtures of the real architectures) through biores."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_models import BUILDERS, build_lm, build_tower, saved_keys
from PIL import Image

STOCK = sorted(BUILDERS)


def _image(w: int = 90, h: int = 70, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


def _messages(text: str = "What is shown?", images: int = 1) -> list[dict]:
    return [{"role": "user", "content": [*({"type": "image"} for _ in range(images)), {"type": "text", "text": text}]}]


@pytest.mark.parametrize("name", STOCK)
def test_fixture_is_a_clean_stock_checkpoint(stock_checkpoint, name):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = stock_checkpoint(name)
    processor = AutoProcessor.from_pretrained(folder)
    model, info = AutoModelForImageTextToText.from_pretrained(folder, output_loading_info=True)
    assert not any(info.values()), info
    text = processor.apply_chat_template(_messages(), add_generation_prompt=True)
    batch = processor(text=[text], images=[_image()], return_tensors="pt")
    image_id = model.config.image_token_id
    assert int((batch["input_ids"] == image_id).sum()) > 1  # the template rendered an image placeholder
    out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == batch["input_ids"].shape[1] + 3


def test_llava_layouts_differ_on_disk(stock_checkpoint):
    legacy, current = saved_keys(stock_checkpoint("llava_legacy")), saved_keys(stock_checkpoint("llava_current"))
    assert any(k.startswith("language_model.model.") for k in legacy)
    assert any(k.startswith("model.language_model.") for k in current)


@pytest.mark.parametrize("kind", ["clip", "siglip", "siglip2", "siglip2_naflex"])
def test_towers_and_lms_load(tmp_path, kind):
    from transformers import AutoImageProcessor, AutoModel, AutoModelForCausalLM, AutoTokenizer

    tower = build_tower(tmp_path, kind)
    assert AutoModel.from_pretrained(tower) is not None and AutoImageProcessor.from_pretrained(tower) is not None
    arch = "llama" if kind in ("clip", "siglip2") else "qwen2"
    lm = build_lm(tmp_path, arch)
    tok = AutoTokenizer.from_pretrained(lm)
    assert tok.chat_template and AutoModelForCausalLM.from_pretrained(lm).config.vocab_size == len(tok)
    ids = tok("a <image><image>b")["input_ids"] if arch == "llama" else None
    if ids is not None:  # byte-level BPE: adjacent image tokens stay two tokens, no space between
        assert ids.count(tok.convert_tokens_to_ids("<image>")) == 2


# --------------------------------------------------------------------------- biores_llava == stock


def _stock_run(folder, text, images, max_new=5):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    prompt = processor.apply_chat_template(_messages(text, len(images)), add_generation_prompt=True)
    batch = processor(text=[prompt], images=images or None, return_tensors="pt")
    out = model.generate(
        **batch, max_new_tokens=max_new, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id
    )
    new = out[0, batch["input_ids"].shape[1] :]
    return (
        batch["input_ids"][0].tolist(),
        processor.tokenizer.decode(new, skip_special_tokens=True).strip(),
        int((batch["input_ids"] == model.config.image_token_id).sum()),
    )


@pytest.mark.parametrize("name", STOCK)
def test_biores_llava_equals_stock_token_for_token(stock_checkpoint, name):
    from biores_plugin.lmms_plugin.biores_llava import BioresLlava

    folder = stock_checkpoint(name)
    image = _image(90, 70)
    ids, text, n_visual = _stock_run(folder, "What is shown?", [image])
    lm = BioresLlava(pretrained=str(folder), max_new_tokens=5)
    prompt = lm.processor.build_prompt("What is shown?", 1)
    inputs, visual, sizes = lm._encode([prompt], [[image]])
    assert inputs["input_ids"][0].tolist() == ids
    assert visual == [n_visual] and len(sizes[0]) == 1
    result = lm._generate(["What is shown?"], [[image]], {"max_new_tokens": 5})[0]
    assert result.text == text
    assert result.token_counts.to_dict()["visual_tokens"] == n_visual


def test_text_only_requests_and_mixed_batches(stock_checkpoint, tiny_checkpoint):
    from biores_plugin.lmms_plugin.biores_llava import BioresLlava

    for folder in (tiny_checkpoint, stock_checkpoint("llava_legacy"), stock_checkpoint("qwen2_vl")):
        lm = BioresLlava(pretrained=str(folder), max_new_tokens=2, batch_size=2)
        alone, mixed_text, mixed_image = (
            *lm._generate(["what is shown"], [[]], {}),
            *lm._generate(["what is shown"] * 2, [[], [_image()]], {}),
        )
        assert alone.token_counts.visual_tokens == 0 == mixed_text.token_counts.visual_tokens
        assert mixed_image.token_counts.visual_tokens > 0


def test_broken_checkpoint_is_a_one_line_error(tmp_path, stock_checkpoint):
    import shutil

    from safetensors.torch import load_file, save_file

    from biores_plugin.errors import BioresConfigError
    from biores_plugin.lmms_plugin.biores_llava import BioresLlava

    folder = tmp_path / "broken"
    shutil.copytree(stock_checkpoint("llava_legacy"), folder)
    state = load_file(str(folder / "model.safetensors"))
    state.pop("language_model.model.norm.weight")
    state["extra.weight"] = state["multi_modal_projector.linear_1.bias"].clone()
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(BioresConfigError) as err:
        BioresLlava(pretrained=str(folder))
    message = str(err.value)
    assert (
        "\n" not in message
        and "1 missing keys (model.language_model.norm.weight)" in message
        and "1 unexpected keys" in message
    )


def test_policy_override_on_stock_llava_uses_its_processor_config_stats(tmp_path, stock_checkpoint):
    import json
    import shutil

    from biores_plugin.lmms_plugin.biores_llava import BioresLlava
    from biores_plugin.models.native_llava import BioresLlavaProcessor

    folder = tmp_path / "llava"
    shutil.copytree(stock_checkpoint("llava_legacy"), folder)
    config = json.loads((folder / "processor_config.json").read_text())
    config["image_processor"].update(image_mean=[0.1, 0.2, 0.3], image_std=[0.4, 0.5, 0.6])
    (folder / "processor_config.json").write_text(json.dumps(config))
    assert not (folder / "preprocessor_config.json").exists()  # transformers 5 writes only processor_config.json
    processor = BioresLlavaProcessor.from_pretrained(folder, image_aspect_ratio="native")
    assert list(processor.image_processor.image_mean) == [0.1, 0.2, 0.3] and processor.stock_image_processor is None
    stock = BioresLlavaProcessor.from_pretrained(folder)
    assert stock.stock_image_processor is not None and list(stock.stock_image_processor.image_mean) == [0.1, 0.2, 0.3]
    lm = BioresLlava(pretrained=str(folder), image_aspect_ratio="native", max_new_tokens=2)
    native = lm._generate(["what is shown"], [[_image(98, 70)]], {})[0].token_counts.to_dict()
    assert native["visual_tokens"] == (70 // 14) * (98 // 14) and native["visual_tokens_sizes"] == [[98, 70]]


def test_data_parallel_two_ranks_one_progress_bar(tmp_path, tiny_checkpoint, synth_small):
    """``torchrun``/``accelerate launch`` data parallel on CPU: each rank knows itself, results gather."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "dp"
    env = {
        **os.environ,
        "BIORES_SYNTH_PATH": str(synth_small),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    cmd = [
        str(Path(sys.executable).parent / "torchrun"),
        "--nproc_per_node",
        "2",
        "-m",
        "lmms_eval",
        "--model",
        "biores_llava",
        "--model_args",
        f"pretrained={tiny_checkpoint},device=cpu",
        "--tasks",
        "biores_synth_224",
        "--limit",
        "6",
        "--output_path",
        str(out),
        "--log_samples",
        "--verbosity",
        "DEBUG",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "biores_llava: rank 0 of 2" in log and "biores_llava: rank 1 of 2" in log
    assert log.count("biores_llava:   0%") <= 1  # one progress bar (rank 0)
    samples = [
        json.loads(line)
        for f in out.glob("**/*_samples_biores_synth_224.jsonl")
        for line in f.read_text().splitlines()
        if line.strip()
    ]
    assert sorted(s["doc_id"] for s in samples) == list(range(6))
    assert all(s["token_counts"][0]["visual_tokens"] > 0 for s in samples)
