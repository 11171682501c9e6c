"""Tiny random checkpoints of the real HF architectures, built locally from configs.

Each ``build_*(root)`` writes one folder as ``save_pretrained`` would (model, real processor
class, byte-level BPE tokenizer, the real chat template) and returns its Path. Nothing is
downloaded; every builder takes well under a second or two on CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

# --------------------------------------------------------------------------- chat templates
# The hub checkpoints' templates (llava-hf/*, Qwen/*): images come from ``{"type": "image"}`` parts.

LLAVA_15_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% "
    "endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}"
    "{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

LLAVA_NEXT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'][0]['text'] + '</s> '}}"
    "{% endif %}{% endfor %}"
)

LLAVA_ONEVISION_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', "
    "'text') %}"
    "{{ '\n' + content['text'] }}{% endfor %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}"
    "{{ '\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}{{'<|im_end|>'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% "
    "endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Plain-LM templates: Llama-2-chat-like (for "llama") and ChatML (Qwen2) with string content.
LLAMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ ' ' + message['content'] + eos_token }}{% endif "
    "%}{% endfor %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CORPUS = [
    "USER: ASSISTANT: What is shown in the image? Is there a lesion? yes no left right lung heart",
    "Answer the question using a single word or phrase. Which organ is abnormal? The liver.",
    "system You are a helpful assistant. user assistant [INST] [/INST] cell nucleus tissue stain",
    "What modality is this? CT MRI X-ray ultrasound microscopy pathology slide options answer with one word",
]
LLAMA_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<image>",
    "<video>",
]


# --------------------------------------------------------------------------- tokenizers


def build_tokenizer(style: str = "llama", vocab_size: int = 320, image_token: str | None = None):
    """A byte-level BPE tokenizer trained on a tiny corpus, as ``PreTrainedTokenizerFast``.

    ``style="llama"``: ``<s>``/``</s>``/``<unk>``/``<pad>`` + ``<image>``; ``"qwen"``: ChatML and
    the Qwen vision specials (``<|image_pad|>``, ...) plus ``<image>``/``<video>`` for OneVision
    (``image_token="<image>"`` makes those the tokenizer's image/video tokens, as llava-hf's).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = LLAMA_SPECIALS if style == "llama" else QWEN_SPECIALS
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(CORPUS * 4, trainer=trainer)
    if style == "llama":
        bos = core.token_to_id("<s>")
        core.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
        )
        tok = PreTrainedTokenizerFast(
            tokenizer_object=core,
            bos_token="<s>",
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
            extra_special_tokens={"image_token": "<image>"},
        )
    else:
        core.post_processor = processors.ByteLevel(trim_offsets=False)
        tok = PreTrainedTokenizerFast(
            tokenizer_object=core,
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            extra_special_tokens={
                "image_token": image_token or "<|image_pad|>",
                "video_token": "<video>" if image_token else "<|video_pad|>",
                "vision_start_token": "<|vision_start|>",
                "vision_end_token": "<|vision_end|>",
            },
        )
    return tok


def _ids(tok) -> dict:
    return {"pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}


def _text_config(arch: str, tok, hidden: int = 32, layers: int = 1):
    from transformers import LlamaConfig, Qwen2Config

    cls = LlamaConfig if arch == "llama" else Qwen2Config
    return cls(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        **_ids(tok),
    )


def _vision_config(kind: str, image_size: int, patch_size: int = 14, hidden: int = 32):
    from transformers import CLIPVisionConfig, Siglip2VisionConfig, SiglipVisionConfig

    kw = dict(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        patch_size=patch_size,
    )
    if kind == "clip":
        return CLIPVisionConfig(image_size=image_size, projection_dim=hidden, **kw)
    if kind in ("siglip", "siglip2"):  # fixed-size SigLIP2 checkpoints use the SigLIP classes
        return SiglipVisionConfig(image_size=image_size, **kw)
    if kind == "siglip2_naflex":
        return Siglip2VisionConfig(num_patches=(image_size // patch_size) ** 2, **kw)
    raise ValueError(f"unknown tower kind {kind!r}")


def _finish(model, tok, folder: Path, seed_model=True) -> None:
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(folder)


def _seeded(cls, config, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    model = cls(config).eval()
    with torch.no_grad():  # random init is tiny-std; widen it so greedy outputs differ per input
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.2)
    return model


# --------------------------------------------------------------------------- plain parts


def build_lm(root: Path, arch: str = "llama") -> Path:
    """A causal LM folder (``LlamaForCausalLM`` / ``Qwen2ForCausalLM``) with a chat template."""
    from transformers import LlamaForCausalLM, Qwen2ForCausalLM

    folder = Path(root) / f"lm-{arch}"
    tok = build_tokenizer("llama" if arch == "llama" else "qwen")
    tok.chat_template = LLAMA_TEMPLATE if arch == "llama" else CHATML_TEMPLATE
    model = _seeded(LlamaForCausalLM if arch == "llama" else Qwen2ForCausalLM, _text_config(arch, tok, hidden=64))
    _finish(model, tok, folder)
    tok.save_pretrained(folder)
    return folder


def build_tower(root: Path, kind: str = "clip", image_size: int = 56) -> Path:
    """A vision tower folder (CLIP / SigLIP / SigLIP2 / SigLIP2 NaFlex) with its image processor."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionModel,
        Siglip2ImageProcessor,
        Siglip2VisionModel,
        SiglipImageProcessor,
        SiglipVisionModel,
    )

    folder = Path(root) / f"tower-{kind}"
    patch = 14 if kind in ("clip", "siglip") else 16
    image_size = image_size if patch == 14 else 64
    config = _vision_config(kind, image_size, patch)
    if kind == "clip":
        model = _seeded(CLIPVisionModel, config)
        proc = CLIPImageProcessor(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        )
    elif kind in ("siglip", "siglip2"):
        model = _seeded(SiglipVisionModel, config)
        proc = SiglipImageProcessor(size={"height": image_size, "width": image_size})
    else:
        model = _seeded(Siglip2VisionModel, config)
        proc = Siglip2ImageProcessor(patch_size=patch, max_num_patches=(image_size // patch) ** 2)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------- LLaVA family


def _llava_parts(image_size: int = 56, tower: str = "clip"):
    tok = build_tokenizer("llama")
    vision = _vision_config(tower, image_size)
    return tok, vision, _text_config("llama", tok)


def _llava_family_config(tok, vision, text) -> dict:
    """What LLaVA-1.5 and LLaVA-NeXT configs share: CLIP + Llama parts, 'default' select, layer -2."""
    return {
        "vision_config": vision,
        "text_config": text,
        "image_token_id": tok.convert_tokens_to_ids("<image>"),
        "vision_feature_select_strategy": "default",
        "vision_feature_layer": -2,
    }


def _save_processor(cls, image_processor, tok, vision, template: str, folder: Path) -> None:
    cls(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=vision.patch_size,
        vision_feature_select_strategy="default",
        chat_template=template,
        num_additional_image_tokens=1,
    ).save_pretrained(folder)


def build_llava(root: Path, layout: str = "legacy", image_size: int = 56) -> Path:
    """LLaVA-1.5 (CLIP + Llama, 'default' select, CLIP crop processor), saved as transformers
    writes it (``layout="legacy"``: ``language_model.model.*`` keys, as the llava-hf hub
    checkpoints) or with the in-memory ``model.language_model.*`` keys (``"current"``)."""
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    if layout not in ("legacy", "current"):
        raise ValueError(f"layout must be 'legacy' or 'current', got {layout!r}")
    folder = Path(root) / f"llava-1.5-{layout}"
    tok, vision, text = _llava_parts(image_size)
    config = LlavaConfig(**_llava_family_config(tok, vision, text), projector_hidden_act="gelu")
    model = _seeded(LlavaForConditionalGeneration, config)
    _finish(model, tok, folder)
    if layout == "current":
        from safetensors.torch import save_file

        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        for old in folder.glob("model*.safetensors*"):
            old.unlink()
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    proc = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    _save_processor(LlavaProcessor, proc, tok, vision, LLAVA_15_TEMPLATE, folder)
    return folder


def build_llava_next(root: Path, image_size: int = 28) -> Path:
    """LLaVA-NeXT (anyres): CLIP + Llama, ``image_grid_pinpoints`` multiples of the tower size."""
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    folder = Path(root) / "llava-next"
    tok, vision, text = _llava_parts(image_size)
    s = image_size
    pinpoints = [[s, 2 * s], [2 * s, s], [2 * s, 2 * s], [s, 3 * s], [3 * s, s]]
    config = LlavaNextConfig(**_llava_family_config(tok, vision, text), image_grid_pinpoints=pinpoints)
    model = _seeded(LlavaNextForConditionalGeneration, config)
    _finish(model, tok, folder)
    proc = LlavaNextImageProcessor(
        size={"shortest_edge": s}, crop_size={"height": s, "width": s}, image_grid_pinpoints=pinpoints
    )
    _save_processor(LlavaNextProcessor, proc, tok, vision, LLAVA_NEXT_TEMPLATE, folder)
    return folder


def build_llava_onevision(root: Path, image_size: int = 28) -> Path:
    """LLaVA-OneVision: SigLIP + Qwen2, anyres_max_9, ``full`` select, ChatML-style template."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    folder = Path(root) / "llava-onevision"
    tok = build_tokenizer("qwen", image_token="<image>")
    vision = _vision_config("siglip", image_size)
    s = image_size
    pinpoints = [[s * i, s * j] for i in range(1, 4) for j in range(1, 4)]
    config = LlavaOnevisionConfig(
        vision_config=vision,
        text_config=_text_config("qwen2", tok),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        video_token_id=tok.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=pinpoints,
        vision_aspect_ratio="anyres_max_9",
    )
    model = _seeded(LlavaOnevisionForConditionalGeneration, config)
    _finish(model, tok, folder)
    proc = LlavaOnevisionImageProcessor(size={"height": s, "width": s}, image_grid_pinpoints=pinpoints)
    video = LlavaOnevisionVideoProcessor(size={"height": s, "width": s})
    LlavaOnevisionProcessor(
        image_processor=proc,
        tokenizer=tok,
        video_processor=video,
        num_image_tokens=(s // vision.patch_size) ** 2,
        vision_feature_select_strategy="full",
        chat_template=LLAVA_ONEVISION_TEMPLATE,
        image_token="<image>",
        video_token="<video>",
    ).save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------- Qwen-VL family


#: The vision tower shared by the tiny Qwen2.5-VL and Qwen3-VL checkpoints (each adds its own keys).
_QWEN_VISION = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=64)


def build_qwen_vl(root: Path, family: str = "qwen2_vl") -> Path:
    """Qwen2-VL / Qwen2.5-VL / Qwen3-VL with their processors (``min_pixels``/``max_pixels`` kept
    small: 4..64 merged tokens) and the Qwen2-VL chat template."""
    import transformers as tf

    folder = Path(root) / family
    tok = build_tokenizer("qwen")
    tid = tok.convert_tokens_to_ids
    text_kw = dict(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        **_ids(tok),
    )
    ids = dict(
        image_token_id=tid("<|image_pad|>"),
        video_token_id=tid("<|video_pad|>"),
        vision_start_token_id=tid("<|vision_start|>"),
        vision_end_token_id=tid("<|vision_end|>"),
    )
    if family == "qwen2_vl":
        patch = 14
        vision = dict(depth=1, embed_dim=32, hidden_size=64, num_heads=4, patch_size=patch)
        text_kw["rope_parameters"] = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}
        config = tf.Qwen2VLConfig(text_config=text_kw, vision_config=vision, **ids)
        model_cls, proc_cls, img_cls = tf.Qwen2VLForConditionalGeneration, tf.Qwen2VLProcessor, tf.Qwen2VLImageProcessor
        video_cls = tf.Qwen2VLVideoProcessor
    elif family == "qwen2_5_vl":
        patch = 14
        vision = dict(_QWEN_VISION, patch_size=patch, window_size=56, fullatt_block_indexes=[1])
        text_kw["rope_parameters"] = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}
        config = tf.Qwen2_5_VLConfig(text_config=text_kw, vision_config=vision, **ids)
        model_cls, proc_cls, img_cls = (
            tf.Qwen2_5_VLForConditionalGeneration,
            tf.Qwen2_5_VLProcessor,
            tf.Qwen2VLImageProcessor,
        )
        video_cls = tf.Qwen2VLVideoProcessor
    elif family == "qwen3_vl":
        patch = 16
        vision = dict(_QWEN_VISION, patch_size=patch, num_position_embeddings=64, deepstack_visual_indexes=[0])
        text_kw.update(
            head_dim=16,
            rope_parameters={
                "rope_type": "default",
                "mrope_section": [2, 3, 3],
                "mrope_interleaved": True,
                "rope_theta": 10000.0,
            },
        )
        config = tf.Qwen3VLConfig(text_config=text_kw, vision_config=vision, **ids)
        model_cls, proc_cls, img_cls = tf.Qwen3VLForConditionalGeneration, tf.Qwen3VLProcessor, tf.Qwen2VLImageProcessor
        video_cls = tf.Qwen3VLVideoProcessor
    else:
        raise ValueError(f"family must be qwen2_vl, qwen2_5_vl or qwen3_vl, got {family!r}")
    model = _seeded(model_cls, config)
    _finish(model, tok, folder)
    unit = patch * 2
    image_kw = dict(
        patch_size=patch, merge_size=2, size={"shortest_edge": 4 * unit * unit, "longest_edge": 64 * unit * unit}
    )
    if family == "qwen3_vl":
        image_kw.update(image_mean=[0.5] * 3, image_std=[0.5] * 3)
    proc = proc_cls(
        image_processor=img_cls(**image_kw),
        tokenizer=tok,
        video_processor=video_cls(patch_size=patch),
        chat_template=QWEN2_VL_TEMPLATE,
    )
    proc.save_pretrained(folder)
    return folder


BUILDERS = {
    "llava_legacy": lambda root: build_llava(root, "legacy"),
    "llava_current": lambda root: build_llava(root, "current"),
    "llava_next": build_llava_next,
    "llava_onevision": build_llava_onevision,
    "qwen2_vl": lambda root: build_qwen_vl(root, "qwen2_vl"),
    "qwen2_5_vl": lambda root: build_qwen_vl(root, "qwen2_5_vl"),
    "qwen3_vl": lambda root: build_qwen_vl(root, "qwen3_vl"),
}


def saved_keys(folder: Path) -> list[str]:
    """The tensor names in a checkpoint folder's safetensors file(s)."""
    from safetensors import safe_open

    keys: list[str] = []
    for file in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(file), "pt") as handle:
            keys.extend(handle.keys())
    return keys


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
