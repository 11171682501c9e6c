"""LLaVA composed as LLaVA composes it: a pretrained language model folder, a vision tower folder
and a fresh ``mlp2x_gelu`` projector, saved as a stock ``LlavaForConditionalGeneration``.

``--version`` picks one of LLaVA's conversation templates (as a chat template saved with the
tokenizer, so lmms-eval's ``llava_hf`` prompts exactly as training did) or ``template``: the
language model's own chat template. Stage 1 writes ``mm_projector.bin`` in LLaVA's key layout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import BioresConfigError
from ..models.checkpoint import folder_config
from ..models.llava_checkpoints import ComposedLlavaProcessor, tower_sized
from ..models.native_llava import BioresLlavaForConditionalGeneration
from .checks import check_memory

IMAGE_TOKEN = "<image>"
TOWER_TYPES = {
    "clip_vision_model": "clip",
    "clip": "clip",
    "siglip_vision_model": "siglip",
    "siglip": "siglip",
    "siglip2_vision_model": "siglip2",
    "siglip2": "siglip2",
}
_VICUNA = (
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions."
)
_LLAMA3 = (
    "You are a helpful language and vision assistant. You are able to understand the visual content that the "
    "user provides, and assist the user with a variety of tasks using natural language."
)
# (system prefix, user turn start, user turn end, assistant turn start, assistant turn end)
TEMPLATES = {
    "plain": ("", "", "", "", "{{ eos_token }}"),
    "v1": (_VICUNA + " ", "USER: ", " ", "ASSISTANT:", "{{ eos_token }}"),
    "llama_3": (
        "<|start_header_id|>system<|end_header_id|>\n\n" + _LLAMA3 + "<|eot_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\n",
        "<|eot_id|>",
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|eot_id|>",
    ),
    "qwen_2": (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
        "<|im_start|>user\n",
        "<|im_end|>\n",
        "<|im_start|>assistant\n",
        "<|im_end|>\n",
    ),
}
VERSIONS = (*TEMPLATES, "template")


def chat_template(version: str) -> str:
    """LLaVA's conversation ``version`` as a Jinja chat template (string or structured content)."""
    system, u0, u1, a0, a1 = TEMPLATES[version]
    content = (
        "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for p in m['content'] %}"
        "{% if p['type'] == 'image' %}"
        + IMAGE_TOKEN
        + "\n{% elif p['type'] == 'text' %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}"
    )
    return (
        "{{ '"
        + _esc(system)
        + "' }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '"
        + _esc(u0)
        + "' }}"
        + content
        + "{{ '"
        + _esc(u1)
        + "' }}{% elif m['role'] == 'assistant' %}{{ '"
        + _esc(a0)
        + " ' }}"
        + content
        + a1
        + "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '"
        + _esc(a0)
        + "' }}{% endif %}"
    )


_FLATTEN = (  # structured content (lmms-eval's chat wrappers) -> "<image>\ntext", before the LM's own template
    "{% set ns = namespace(msgs=[]) %}{% for m in messages %}{% if m['content'] is string %}{% set ns.msgs = ns.msgs + "
    "[m] %}"
    "{% else %}{% set t = namespace(s='') %}{% for p in m['content'] %}{% if p['type'] == 'image' %}{% set t.s = t.s + "
    "'" + IMAGE_TOKEN + "\\n' %}"
    "{% elif p['type'] == 'text' %}{% set t.s = t.s + p['text'] %}{% endif %}{% endfor %}"
    "{% set ns.msgs = ns.msgs + [{'role': m['role'], 'content': t.s}] %}{% endif %}{% endfor %}{% set messages = "
    "ns.msgs %}"
)


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")


def tower_kind(path: str | Path) -> tuple[str, Any]:
    """``(clip | siglip | siglip2, vision config)`` of ``--vision_tower FOLDER`` (a one-line error otherwise)."""
    from transformers import AutoConfig

    data = folder_config(path, "--vision_tower")
    kind = TOWER_TYPES.get(str(data["model_type"]))
    if kind is None:
        raise BioresConfigError(
            f"--vision_tower {path}: expected a CLIP, SigLIP or SigLIP2 tower, found model_type {data['model_type']!r}"
        )
    config = AutoConfig.from_pretrained(path)
    vision = getattr(config, "vision_config", config)
    if kind == "siglip2":
        raise BioresConfigError(
            f"--vision_tower {path}: a SigLIP2 NaFlex tower (model_type siglip2) needs spatial_shapes and a patch "
            f"mask, "
            "which a stock LlavaForConditionalGeneration cannot pass; use a fixed-resolution SigLIP2 checkpoint "
            "(model_type siglip)"
        )
    return kind, vision


def _tokenizer(lm_path: str, version: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(lm_path)
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    if (
        getattr(tokenizer, "image_token", IMAGE_TOKEN) != IMAGE_TOKEN
    ):  # e.g. a Qwen2 LM's <|image_pad|>: LlavaProcessor reads this
        tokenizer.image_token = IMAGE_TOKEN
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    if tokenizer.eos_token is None:
        raise BioresConfigError(f"--model_name_or_path {lm_path}: the tokenizer has no eos_token")
    if version == "template":
        if not getattr(tokenizer, "chat_template", None) or not isinstance(tokenizer.chat_template, str):
            raise BioresConfigError(
                f"--version template: {lm_path}'s tokenizer has no (single) chat template (use plain, v1, llama_3 or "
                f"qwen_2)"
            )
        tokenizer.chat_template = _FLATTEN + tokenizer.chat_template
    else:
        tokenizer.chat_template = chat_template(version)
    return tokenizer


def compose_config(lm_path: str, tower_path: str, tokenizer: Any, select_layer: int) -> Any:
    from transformers import AutoConfig, LlavaConfig

    kind, vision = tower_kind(tower_path)
    text = AutoConfig.from_pretrained(lm_path)
    text.vocab_size = max(int(text.vocab_size), len(tokenizer))
    config = LlavaConfig(
        vision_config=vision.to_dict() | {"model_type": vision.model_type},
        text_config=text.to_dict() | {"model_type": text.model_type},
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default" if kind == "clip" else "full",
        vision_feature_layer=select_layer,
        tie_word_embeddings=bool(getattr(text, "tie_word_embeddings", False)),
    )
    config.pad_token_id = tokenizer.pad_token_id
    return config


def load_projector(model: Any, path: str) -> None:
    """``--pretrain_mm_mlp_adapter``: LLaVA's ``mm_projector.bin`` (``model.mm_projector.0.*``) or HF names."""
    file = Path(path)
    if not file.is_file():
        raise BioresConfigError(f"--pretrain_mm_mlp_adapter {path} does not exist")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(file))
    else:
        state = torch.load(file, map_location="cpu", weights_only=True)
    renamed = {}
    for key, value in state.items():
        name = key.split("mm_projector.")[-1].split("multi_modal_projector.")[-1]
        name = (
            name.replace("0.", "linear_1.", 1)
            if name.startswith("0.")
            else name.replace("2.", "linear_2.", 1)
            if name.startswith("2.")
            else name
        )
        renamed[name] = value
    projector = model.model.multi_modal_projector
    try:
        projector.load_state_dict(renamed, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise BioresConfigError(f"--pretrain_mm_mlp_adapter {path} does not fit this projector: {first}") from None


def save_projector(output_dir: Path) -> Path:
    """Stage 1's ``mm_projector.bin`` in LLaVA's key layout (readable by LLaVA and stage 2),
    taken from the saved checkpoint (so it is whole under FSDP / ZeRO-3 as well)."""
    from safetensors import safe_open

    out = {}
    for file in sorted(Path(output_dir).glob("*.safetensors")):
        with safe_open(str(file), "pt") as handle:
            for key in handle.keys():
                if ".multi_modal_projector." in f".{key}":
                    name = key.split("multi_modal_projector.", 1)[1]
                    out[f"model.mm_projector.{'0' if name.startswith('linear_1') else '2'}.{name.split('.', 1)[1]}"] = (
                        handle.get_tensor(key)
                    )
    if not out:
        raise BioresConfigError(f"{output_dir}: the saved checkpoint holds no projector weights")
    path = Path(output_dir) / "mm_projector.bin"
    torch.save(out, path)
    return path


def compose_llava(model_args: Any, data_args: Any, seed: int, training_args: Any = None) -> tuple[Any, Any]:
    """The model and training processor for ``--model_name_or_path LM --vision_tower TOWER``."""
    from transformers import AutoImageProcessor, AutoModel, AutoModelForCausalLM
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    lm_path, tower_path = model_args.model_name_or_path, model_args.vision_tower
    if not tower_path:
        raise BioresConfigError(
            f"--model_name_or_path {lm_path} is a language model: pass --vision_tower TOWER_FOLDER to compose a LLaVA"
        )
    if model_args.mm_projector_type != "mlp2x_gelu":
        raise BioresConfigError(
            f"--mm_projector_type {model_args.mm_projector_type!r}: a stock LLaVA checkpoint has the mlp2x_gelu "
            f"projector"
        )
    if data_args.merge_size != 1:
        raise BioresConfigError("--merge_size 2 has no stock LLaVA projector; a composed LLaVA uses --merge_size 1")
    if model_args.version not in VERSIONS:
        raise BioresConfigError(f"--version must be one of {', '.join(VERSIONS)}, got {model_args.version!r}")
    tokenizer = _tokenizer(lm_path, model_args.version)
    layer = -2 if model_args.mm_vision_select_layer is None else int(model_args.mm_vision_select_layer)
    config = compose_config(lm_path, tower_path, tokenizer, layer)
    with torch.device("meta"):
        model = BioresLlavaForConditionalGeneration(config)
    check_memory(model, f"the composed LLaVA ({lm_path} + {tower_path})", model_args, training_args)
    lm = AutoModelForCausalLM.from_pretrained(lm_path, dtype=torch.float32)
    if lm.get_input_embeddings().weight.shape[0] < len(tokenizer):
        lm.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    tower = AutoModel.from_pretrained(tower_path, dtype=torch.float32)
    if not str(tower.config.model_type).endswith("vision_model"):  # a full CLIP / SigLIP checkpoint
        tower = _vision_part(tower)
    model.model.language_model = lm.model
    model.lm_head = lm.lm_head
    model.model.vision_tower = tower
    torch.manual_seed(seed)
    model.model.multi_modal_projector = LlavaMultiModalProjector(config)
    model.config.text_config.vocab_size = lm.get_input_embeddings().weight.shape[0]
    leftover = [n for n, p in model.named_parameters() if p.is_meta]
    if leftover:
        raise BioresConfigError(f"composing LLaVA left weights unset: {leftover[:3]}")
    if model_args.pretrain_mm_mlp_adapter:
        load_projector(model, model_args.pretrain_mm_mlp_adapter)
    patch = int(config.vision_config.patch_size)
    resolution = tower_sized(data_args.resolution(patch), config.vision_config)
    try:
        image_processor = AutoImageProcessor.from_pretrained(tower_path)
        mean, std = image_processor.image_mean, image_processor.image_std
    except (OSError, ValueError):
        mean = std = [0.5, 0.5, 0.5]
    processor = ComposedLlavaProcessor(
        tokenizer, resolution, image_mean=mean, image_std=std, image_placement=model_args.image_placement
    )
    processor.tower_path = tower_path
    return model, processor


def _vision_part(model: Any) -> Any:
    """The vision tower model of a full CLIP / SigLIP checkpoint, as its ``*VisionModel``."""
    from transformers import AutoModel

    vision = getattr(model, "vision_model", None)
    if vision is None:
        raise BioresConfigError(f"{type(model).__name__} holds no vision_model")
    wrapper = AutoModel.from_config(model.config.vision_config)
    wrapper.vision_model = vision
    return wrapper


def save_stock_llava(model: Any, processor: Any, output_dir: str | Path, tune_mm_mlp_adapter: bool) -> None:
    """A stock HF LLaVA checkpoint: ``LlavaForConditionalGeneration`` config, ``LlavaProcessor``
    with the tower's image processor, plus the biores policy files ``biores_llava`` reads."""
    from transformers import AutoImageProcessor, LlavaProcessor

    out = Path(output_dir)
    config_file = out / "config.json"
    config = json.loads(config_file.read_text())
    config["architectures"] = ["LlavaForConditionalGeneration"]
    config_file.write_text(json.dumps(config, indent=2) + "\n")
    vision = model.config.vision_config
    image_processor = AutoImageProcessor.from_pretrained(processor.tower_path)
    stock = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=processor.tokenizer,
        patch_size=int(vision.patch_size),
        vision_feature_select_strategy=model.config.vision_feature_select_strategy,
        num_additional_image_tokens=1 if model.config.vision_feature_select_strategy == "default" else 0,
        chat_template=processor.tokenizer.chat_template,
    )
    stock.save_pretrained(out)
    image_processor.save_pretrained(out)  # replaces the training processor's preprocessor_config.json
    processor.resolution.save_pretrained(out)
    (out / "biores_processor.json").write_text(
        json.dumps(
            {
                "processor_class": "BioresLlavaProcessor",
                "image_placement": processor.image_placement,
                "image_mean": list(image_processor.image_mean),
                "image_std": list(image_processor.image_std),
            },
            indent=2,
        )
        + "\n"
    )
    if tune_mm_mlp_adapter:
        save_projector(out)
