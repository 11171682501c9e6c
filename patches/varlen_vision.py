"""Runtime patch: CLIP / SigLIP vision towers take a LIST of differently sized images (transformers 5.x).

``apply()`` / ``revert()`` / ``with patched():`` wrap, through :mod:`biores_plugin.patching` (group
``"varlen_vision"``): ``CLIPVisionModel.forward`` and ``SiglipVisionModel.forward`` (list/tuple ``pixel_values``
-> ``biores_plugin.vision.forward_packed``, tensors -> the original) and ``SiglipAttention.forward`` (hands the
packed kwargs to the attention function). ``apply()`` also registers ``"biores_varlen"`` (not undone by revert).
Details, usage and refusals: ``docs/vision_attention.md``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Iterator

from biores_plugin import patching
from biores_plugin.errors import BioresConfigError

__all__ = ["SUPPORTED_TRANSFORMERS_MAJOR", "apply", "is_applied", "patched", "revert", "targets"]

SUPPORTED_TRANSFORMERS_MAJOR = 5
GROUP = "varlen_vision"  # the biores_plugin.patching group of every wrapper installed here

_LOCK = threading.RLock()


def _transformers_major() -> tuple[int, str]:
    try:
        import transformers
    except ImportError as e:  # pragma: no cover
        raise BioresConfigError(
            f"varlen_vision patch needs transformers {SUPPORTED_TRANSFORMERS_MAJOR}.x: {e}"
        ) from None
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

    return forward


# --------------------------------------------------------------------------------------------- public API
def is_applied() -> bool:
    return bool(patching.patches(GROUP))


def apply() -> None:
    """Install the patch (idempotent: a second call does nothing)."""
    with _LOCK:
        if is_applied():
            return
        found = targets()
        from biores_plugin.vision.attention import register_with_transformers

        register_with_transformers()
        try:
            for cls, name in found:
                make = _attention_forward_wrapper if cls.__name__.endswith("Attention") else _vision_forward_wrapper
                patching.wrap(cls, name, make, group=GROUP)
        except BaseException:
            patching.revert(GROUP)  # all or nothing
            raise


def revert() -> None:
    """Restore the exact original callables (no-op when not applied)."""
    with _LOCK:
        patching.revert(GROUP)


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
