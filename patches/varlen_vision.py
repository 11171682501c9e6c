"""Runtime patch: packed, native-resolution CLIP / SigLIP vision towers (transformers 5.x).

Use it the way LLaVA's old ``train_mem.py`` used ``replace_llama_attn_with_flash_attn()`` before ``train()``::

    from biores_plugin.patches import varlen_vision
    varlen_vision.apply()          # or:  with varlen_vision.patched(): ...
    out = clip_vision_model(pixel_values=[img_336x336, img_448x1024, img_224x224])   # list of [C, H_i, W_i]
    out.last_hidden_state          # [1, total_tokens, D], image j = tokens out.cu_seqlens[j]:out.cu_seqlens[j+1]

WHAT IT REPLACES (class attributes; ``revert()`` puts the exact original function objects back):

1. ``transformers.models.clip.modeling_clip.CLIPVisionModel.forward``
2. ``transformers.models.siglip.modeling_siglip.SiglipVisionModel.forward``
   -> a wrapper: when ``pixel_values`` is a list/tuple of ``[C, H_i, W_i]`` tensors it returns
   ``biores_plugin.vision.forward_packed(self, pixel_values, ...)`` (every image embedded at its own size with
   the tower's own ``interpolate_pos_encoding=True``, all tokens packed into one ``[1, total, D]`` sequence, the
   stock encoder layers run with block-diagonal ``"biores_varlen"`` attention; the output is a
   ``BaseModelOutputWithPooling`` with extra ``cu_seqlens`` / ``grid_hw``; ``output_hidden_states`` gives packed
   ``[1, total, D]`` states). Tensor ``pixel_values`` go to the original forward untouched. In transformers 5.x
   these classes ARE the vision transformers (the 4.x ``CLIPVisionTransformer`` / ``SiglipVisionTransformer``
   behind ``.vision_model`` no longer exist), and ``CLIPModel`` / ``CLIPVisionModelWithProjection`` /
   ``SiglipModel`` reach them through their ``.vision_model`` attribute, so those accept lists too.
3. ``transformers.models.siglip.modeling_siglip.SiglipAttention.forward``
   -> a wrapper that makes the packed-sequence kwargs (``cu_seq_lens_q`` / ``max_length_q`` ...) flow to the
   attention function: in transformers 5.24 ``SiglipAttention.forward`` accepts ``**kwargs`` but does not pass
   them to ``attention_interface(...)`` (``CLIPAttention.forward`` does), so a SigLIP model configured with
   ``attn_implementation="biores_varlen"`` would silently attend across images. The wrapper publishes them via
   ``biores_plugin.vision.packed_attention_context`` for the duration of the call and otherwise calls the
   original unchanged.

Importing ``biores_plugin.vision`` also registers the ``"biores_varlen"`` attention function with
``transformers.AttentionInterface`` (additive, not undone by ``revert()``).

Refused (one-line ``BioresConfigError``): transformers major version other than 5, or any hook point above missing.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Iterator
from typing import Any

from biores_plugin.errors import BioresConfigError

__all__ = ["SUPPORTED_TRANSFORMERS_MAJOR", "apply", "is_applied", "patched", "revert", "targets"]

SUPPORTED_TRANSFORMERS_MAJOR = 5

_LOCK = threading.RLock()
_ORIGINALS: dict[tuple[type, str], Any] = {}  # (class, attribute) -> the exact object found in cls.__dict__


def _transformers_major() -> tuple[int, str]:
    try:
        import transformers
    except ImportError as e:  # pragma: no cover
        raise BioresConfigError(f"varlen_vision patch needs transformers {SUPPORTED_TRANSFORMERS_MAJOR}.x: {e}") from None
    version = transformers.__version__
    try:
        return int(version.split(".")[0]), version
    except ValueError:
        raise BioresConfigError(f"varlen_vision patch: cannot parse transformers version {version!r}") from None


def targets() -> list[tuple[type, str]]:
    """The (class, attribute) pairs ``apply()`` replaces; raises BioresConfigError on unsupported transformers."""
    major, version = _transformers_major()
    if major != SUPPORTED_TRANSFORMERS_MAJOR:
        raise BioresConfigError(
            f"varlen_vision patch supports transformers {SUPPORTED_TRANSFORMERS_MAJOR}.x only, found {version}"
        )
    try:
        from transformers import AttentionInterface  # noqa: F401
        from transformers.models.clip import modeling_clip
        from transformers.models.siglip import modeling_siglip
    except ImportError as e:
        raise BioresConfigError(f"varlen_vision patch: transformers {version} lacks a hook point ({e})") from None
    found: list[tuple[type, str]] = []
    for mod, cls_name, needs in (
        (modeling_clip, "CLIPVisionModel", "pixel_values"),
        (modeling_siglip, "SiglipVisionModel", "pixel_values"),
        (modeling_siglip, "SiglipAttention", "hidden_states"),
    ):
        cls = getattr(mod, cls_name, None)
        fn = cls.__dict__.get("forward") if isinstance(cls, type) else None
        if fn is None or needs not in inspect.signature(fn).parameters:
            raise BioresConfigError(
                f"varlen_vision patch: transformers {version} has no {mod.__name__}.{cls_name}.forward({needs}=...)"
            )
        found.append((cls, "forward"))
    for mod, emb in ((modeling_clip, "CLIPVisionEmbeddings"), (modeling_siglip, "SiglipVisionEmbeddings")):
        if not hasattr(getattr(mod, emb, None), "interpolate_pos_encoding"):
            raise BioresConfigError(
                f"varlen_vision patch: transformers {version} has no {emb}.interpolate_pos_encoding"
            )
    return found


# --------------------------------------------------------------------------------------------- wrappers
def _vision_forward_wrapper(original):
    @functools.wraps(original)
    def forward(self, pixel_values=None, *args, **kwargs):
        if not isinstance(pixel_values, (list, tuple)):
            return original(self, pixel_values, *args, **kwargs)
        from biores_plugin.vision.packed_encoder import forward_packed

        if args:
            raise BioresConfigError("packed vision forward: pass options by keyword when pixel_values is a list")
        kwargs.pop("interpolate_pos_encoding", None)  # always on: every image gets its own interpolation
        if kwargs.pop("output_attentions", None):
            raise BioresConfigError("packed vision forward cannot return attention maps (output_attentions=True)")
        return_dict = kwargs.pop("return_dict", None)
        if return_dict is None:
            return_dict = getattr(self.config, "return_dict", True)
        return forward_packed(
            self,
            list(pixel_values),
            output_hidden_states=kwargs.pop("output_hidden_states", None),
            backend=kwargs.pop("biores_backend", "auto"),
            return_dict=return_dict,
        )

    forward.__biores_patch__ = "varlen_vision"
    return forward


def _attention_forward_wrapper(original):
    @functools.wraps(original)
    def forward(self, hidden_states, attention_mask=None, **kwargs):
        from biores_plugin.vision.attention import packed_attention_context, packing_from_kwargs

        info = packing_from_kwargs(kwargs)
        if info is None:
            return original(self, hidden_states, attention_mask, **kwargs)
        with packed_attention_context(info):
            return original(self, hidden_states, attention_mask, **kwargs)

    forward.__biores_patch__ = "varlen_vision"
    return forward


# --------------------------------------------------------------------------------------------- public API
def is_applied() -> bool:
    return bool(_ORIGINALS)


def apply() -> None:
    """Install the patch (idempotent: a second call does nothing)."""
    with _LOCK:
        if _ORIGINALS:
            return
        found = targets()
        from biores_plugin.vision.attention import register_with_transformers

        register_with_transformers()
        for cls, name in found:
            original = cls.__dict__[name]
            wrapper = _attention_forward_wrapper if cls.__name__.endswith("Attention") else _vision_forward_wrapper
            _ORIGINALS[(cls, name)] = original
            setattr(cls, name, wrapper(original))


def revert() -> None:
    """Restore the exact original callables (no-op when not applied)."""
    with _LOCK:
        while _ORIGINALS:
            (cls, name), original = _ORIGINALS.popitem()
            setattr(cls, name, original)


@contextlib.contextmanager
def patched() -> Iterator[None]:
    """``with patched(): ...`` applies the patch for the block; leaves it on if it was on before."""
    with _LOCK:
        was_applied = is_applied()
        apply()
    try:
        yield
    finally:
        if not was_applied:
            revert()
