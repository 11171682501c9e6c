"""Tiny random pretrained-style folders for the training tests: a language model with a real
byte-level BPE tokenizer and chat template, a vision tower, a Qwen2-VL family checkpoint.
Each is written with ``save_pretrained`` exactly as a hub download would be laid out.
"""

from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def _corpus() -> list[str]:
    from biores_plugin.synth.generators import vocabulary

    words = vocabulary() + ["options", "answer", "with", "word", "one", "image", "question", "user", "assistant", "USER", "ASSISTANT"]
    return [" ".join(words)] * 4 + ["The quick brown fox answers: yes, no, two, three cells.", "A chat between a curious user and an assistant."]


def build_bpe_tokenizer(chat_template: str = CHATML, vocab_size: int = 400):
    """A byte-level BPE tokenizer trained here (as GPT-2/Qwen2/Llama-3's are), chatml specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=chat_template)
    return fast


def build_lm(root: Path, arch: str = "qwen2", hidden: int = 32, layers: int = 2) -> Path:
    """A random tiny causal LM folder (``llama`` or ``qwen2``) with tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    tokenizer = build_bpe_tokenizer()
    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch]
    config = cls(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                 num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.pad_token_id,
                 tie_word_embeddings=arch == "qwen2")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    root = Path(root)
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


def build_tower(root: Path, kind: str = "siglip", hidden: int = 32, image_size: int = 64, patch: int = 16) -> Path:
    """A random tiny vision tower folder with its image processor (``clip``, ``siglip``)."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    common = dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=2, image_size=image_size, patch_size=patch)
    torch.manual_seed(1)
    if kind == "clip":
        model = CLIPVisionModel(CLIPVisionConfig(**common))
        proc = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    elif kind == "siglip":
        model = SiglipVisionModel(SiglipVisionConfig(**common))
        proc = SiglipImageProcessor(size={"height": image_size, "width": image_size})
    else:
        raise ValueError(kind)
    root = Path(root)
    model.save_pretrained(root)
    proc.save_pretrained(root)
    return root


def build_qwen_vl(root: Path, family: str = "qwen2_5_vl") -> Path:
    """A random tiny Qwen2-VL / Qwen2.5-VL checkpoint with its processor (BPE tokenizer, chatml)."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor  # noqa: F401
    from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor

    tokenizer = build_bpe_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIALS}
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, max_position_embeddings=4096, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
                eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=True)
    vision = dict(depth=2, hidden_size=32, num_heads=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_chans=3)
    if family == "qwen2_5_vl":
        vision.update(intermediate_size=64, out_hidden_size=32, fullatt_block_indexes=[1], window_size=56)
        config_cls, model_cls, proc_cls = Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    else:
        vision.update(embed_dim=32, mlp_ratio=2, hidden_size=32)
        config_cls, model_cls, proc_cls = Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    config = config_cls(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True)
    torch.manual_seed(2)
    model = model_cls(config)
    root = Path(root)
    model.save_pretrained(root)
    image_processor = Qwen2VLImageProcessor(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 64)
    processor = proc_cls(image_processor=image_processor, tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(), chat_template=CHATML)
    processor.save_pretrained(root)
    return root
