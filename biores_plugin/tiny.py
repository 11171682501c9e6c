"""Tiny, fully local building blocks: a word-level tokenizer made from a vocabulary list.

Used by tests, benchmarks and the offline demo; nothing here touches the hub.
"""

from __future__ import annotations

from collections.abc import Iterable

from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>", "<image>")


def build_word_tokenizer(words: Iterable[str], *, extra_special: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """A whitespace/punctuation word-level tokenizer over ``words`` (lower-cased input).

    Specials: ``<pad>`` (0), ``<unk>``, ``<s>`` (bos), ``</s>`` (eos), ``<image>``.
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    specials = list(dict.fromkeys([*SPECIAL_TOKENS, *extra_special]))
    vocab: dict[str, int] = {}
    for token in [*specials, *sorted({w.lower() for w in words})]:
        vocab.setdefault(token, len(vocab))
    core = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split("<image>", behavior="isolated"),
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Punctuation(),
        ]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )
    return tokenizer


def tiny_llava_config(
    vocab_size: int,
    *,
    tower: str = "siglip",
    image_size: int = 64,
    patch_size: int = 16,
    vision_hidden: int = 64,
    vision_layers: int = 2,
    text_hidden: int = 64,
    text_layers: int = 2,
    heads: int = 4,
    num_channels: int = 3,
    image_token_id: int = 4,
    pad_token_id: int = 0,
    bos_token_id: int = 2,
    eos_token_id: int = 3,
    resolution: dict | None = None,
):
    """A ``LlavaConfig`` for a from-scratch tiny model (CLIP or SigLIP tower + Llama LM)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, SiglipVisionConfig

    vision_kw = dict(
        hidden_size=vision_hidden,
        intermediate_size=4 * vision_hidden,
        num_hidden_layers=vision_layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch_size,
        num_channels=num_channels,
    )
    if tower == "siglip":
        vision = SiglipVisionConfig(**vision_kw)
        strategy, layer = "full", -1
    elif tower == "clip":
        vision = CLIPVisionConfig(**vision_kw, projection_dim=vision_hidden)
        strategy, layer = "default", -1
    else:
        raise ValueError(f"tower must be 'siglip' or 'clip', got {tower!r}")
    text = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=text_hidden,
        intermediate_size=4 * text_hidden,
        num_hidden_layers=text_layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        vision_feature_select_strategy=strategy,
        vision_feature_layer=layer,
        projector_hidden_act="gelu",
        tie_word_embeddings=True,
    )
    config.biores = dict(resolution or {})
    config.architectures = ["BioresLlavaForConditionalGeneration"]
    return config


def build_tiny_llava(
    words: Iterable[str],
    *,
    resolution: dict | None = None,
    seed: int = 0,
    **config_kwargs,
):
    """``(model, processor)``: a random tiny native-resolution LLaVA and its processor."""
    import torch

    from .models.native_llava import BioresLlavaForConditionalGeneration, BioresLlavaProcessor

    tokenizer = build_word_tokenizer(words)
    from .resolution import ResolutionConfig

    res = ResolutionConfig.from_dict(
        resolution
        or {
            "image_aspect_ratio": "native",
            "patch_size": config_kwargs.get("patch_size", 16),
            "merge_size": 2,
            "min_pixels": 32 * 32,
            "max_pixels": 512 * 512,
        }
    )
    config = tiny_llava_config(
        len(tokenizer),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        resolution=res.to_dict(),
        **config_kwargs,
    )
    torch.manual_seed(seed)
    model = BioresLlavaForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    processor = BioresLlavaProcessor(tokenizer, res, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return model, processor
