"""Tiny, fully local building blocks: a word-level tokenizer made from a vocabulary list.

Used by tests, benchmarks and the offline demo; nothing here touches the hub.
"""

from __future__ import annotations

from typing import Iterable

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
        [pre_tokenizers.Split("<image>", behavior="isolated"), pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
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
