"""Version-gated compatibility shims: the original ``llava`` package on current torch / transformers.

``llava-torch==1.2.2.post1`` (and LLaVA-NeXT, same package name) were written for transformers 4.36-4.40.
Every shim wraps or adapts llava's OWN function (none re-implements it), is gated on detecting the drift it
fixes (not on a version number alone), goes through :mod:`biores_plugin.patching` (group ``"llava.shims"``),
and is idempotent; :func:`revert_shims` puts llava's objects back. The table of shims: docs/llava.md.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from biores_plugin.errors import BioresConfigError
from biores_plugin.original_llava.points import SHIM_GROUP, import_or_none, installed, replace_point, revert, wrap_point

__all__ = [
    "LLAVA_INSTALL",
    "SHIMS",
    "Shim",
    "applied_shims",
    "apply_shims",
    "import_llava_train",
    "require_llava",
    "revert_shims",
]

logger = logging.getLogger("biores.llava")

#: How CI / users install the original LLaVA without letting it downgrade torch / transformers.
LLAVA_INSTALL = "pip install --no-deps llava-torch==1.2.2.post1"


def require_llava() -> Any:
    """Import ``llava`` or raise a one-line error with the install command."""
    try:
        import llava  # noqa: F401
    except Exception as exc:  # ImportError, or llava's own import failing
        raise BioresConfigError(
            f"the original LLaVA package is not importable ({type(exc).__name__}: {exc}); install it with: "
            f"{LLAVA_INSTALL}"
        ) from None
    return sys.modules["llava"]


def _params(fn: Callable) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # pragma: no cover
        return []


@dataclass(frozen=True)
class Shim:
    name: str
    fixes: str
    versions: str
    needed: Callable[[], bool]
    apply: Callable[[], None]


def _shim(owner: Any, attr: str, make: Callable[[Any], Any], name: str, *, rebind: bool = False) -> bool:
    return wrap_point(owner, attr, make, group=SHIM_GROUP, label=name, rebind=rebind)


# ----------------------------------------------------------------------------------------------- the shims
def _layernorm_needed() -> bool:
    import transformers.trainer as trainer_mod

    return not hasattr(trainer_mod, "ALL_LAYERNORM_LAYERS")


def _layernorm_apply() -> None:
    import transformers.trainer as trainer_mod
    from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS

    replace_point(trainer_mod, "ALL_LAYERNORM_LAYERS", ALL_LAYERNORM_LAYERS, group=SHIM_GROUP, label="layernorm_import")


def _trainer_cls():
    from llava.train.llava_trainer import LLaVATrainer

    return LLaVATrainer


def _tokenizer_needed() -> bool:
    from transformers import Trainer

    return "tokenizer" not in _params(Trainer.__init__) and "processing_class" in _params(Trainer.__init__)


def _tokenizer_init(orig):
    @functools.wraps(orig)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "tokenizer" in kwargs:
            tokenizer = kwargs.pop("tokenizer")
            kwargs.setdefault("processing_class", tokenizer)
        orig(self, *args, **kwargs)

    return __init__


def _tokenizer_apply() -> None:
    _shim(_trainer_cls(), "__init__", _tokenizer_init, "trainer_tokenizer_kwarg")


def _with_self_attr(attr: str):
    """A wrapper for llava's no-argument override of a method transformers now calls with ``attr``.

    llava's override reads ``self.<attr>``; when called with another value it runs with ``self.<attr>``
    pointed at that value for the call (e.g. ``create_optimizer(model)`` builds the groups on ``model``).
    """

    def make(orig):
        @functools.wraps(orig)
        def method(self, *args, **kwargs):
            value = args[0] if args else kwargs.get(attr)
            saved = getattr(self, attr, None)
            if value is None or value is saved:
                return orig(self)
            setattr(self, attr, value)
            try:
                return orig(self)
            finally:
                setattr(self, attr, saved)

        return method

    return make


def _sampler_needed() -> bool:
    from transformers import Trainer

    return (
        "train_dataset" in _params(Trainer._get_train_sampler) and len(_params(_trainer_cls()._get_train_sampler)) == 1
    )


def _sampler_apply() -> None:
    _shim(_trainer_cls(), "_get_train_sampler", _with_self_attr("train_dataset"), "train_sampler_signature")


def _optimizer_needed() -> bool:
    from transformers import Trainer

    return "model" in _params(Trainer.create_optimizer) and len(_params(_trainer_cls().create_optimizer)) == 1


def _optimizer_apply() -> None:
    _shim(_trainer_cls(), "create_optimizer", _with_self_attr("model"), "create_optimizer_signature")


def _save_ckpt_needed() -> bool:
    from transformers import Trainer

    cls = _trainer_cls()
    return "metrics" not in _params(Trainer._save_checkpoint) and "metrics" in _params(cls._save_checkpoint)


def _save_ckpt_apply() -> None:
    cls = _trainer_cls()

    def make(orig):
        parent_params = None

        @functools.wraps(orig)
        def _save_checkpoint(self, model, trial, metrics=None, **kwargs):
            nonlocal parent_params
            if getattr(self.args, "tune_mm_mlp_adapter", False):
                return orig(self, model, trial)  # llava's adapter-only branch never calls the parent
            parent = super(cls, self)._save_checkpoint
            if parent_params is None:
                parent_params = _params(parent)
            extra = {"metrics": metrics} if "metrics" in parent_params else {}
            extra.update({k: v for k, v in kwargs.items() if k in parent_params})
            return parent(model, trial, **extra)

        return _save_checkpoint

    _shim(cls, "_save_checkpoint", make, "save_checkpoint_signature")


def _deepspeed_needed() -> bool:
    try:
        import deepspeed  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed (ImportError) or broken on import: unusable either way, so shimmed
        return True
    return False


def _lazy_maybe_zero_3(orig):
    @functools.wraps(orig)
    def maybe_zero_3(param, ignore_status=False, name=None):
        if hasattr(param, "ds_id"):  # a ZeRO-3 partitioned parameter: deepspeed is really in use
            return orig(param, ignore_status=ignore_status, name=name)
        return param.detach().cpu().clone()

    return maybe_zero_3


def _deepspeed_apply() -> None:
    for module_name in ("llava.train.train", "llava.train.llava_trainer"):
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        _shim(module, "maybe_zero_3", _lazy_maybe_zero_3, "deepspeed_lazy_import")


class _CompatSize(dict):
    """A plain ``dict`` view of a ``SizeDict`` that also answers the tuple-style uses of 4.x-era code.

    ``size["shortest_edge"]`` works as before; ``size[0]`` and ``min(size)`` give the encoder's input side
    (what LLaVA-NeXT expects from processors whose ``size`` is a tuple, e.g. its SigLIP processor).
    """

    def _side(self) -> int:
        for key in ("shortest_edge", "height", "width", "longest_edge"):
            if dict.get(self, key) is not None:
                return int(dict.__getitem__(self, key))
        raise KeyError("size has no shortest_edge/height/width")

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int) and not dict.__contains__(self, key):
            return self._side()
        if key == "shortest_edge" and not dict.__contains__(self, key):  # height/width-only processors (SigLIP)
            return self._side()
        return dict.__getitem__(self, key)

    def __iter__(self):  # min(size) / max(size) / tuple(size) -> sides, as a (side, side) tuple would give
        side = self._side()
        return iter((side, side))


def _plain_size(value: Any) -> Any:
    if value is None or isinstance(value, (int, tuple, list)) or type(value) is dict:
        return value
    try:
        items = dict(value.items()) if hasattr(value, "items") else {k: v for k, v in value}
    except (TypeError, ValueError, AttributeError):  # not a mapping nor pairs: handed on unchanged, as before the shim
        return value
    return _CompatSize({k: v for k, v in items.items() if v is not None})


class _ProcessorView:
    """Read-through proxy of an image processor with 4.x-style ``size`` / ``crop_size``."""

    def __init__(self, processor: Any):
        object.__setattr__(self, "_processor", processor)

    def __getattr__(self, name: str) -> Any:
        value = getattr(object.__getattribute__(self, "_processor"), name)
        if name in ("size", "crop_size"):
            return _plain_size(value)
        return value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return object.__getattribute__(self, "_processor")(*args, **kwargs)


def _size_needed() -> bool:
    from transformers import CLIPImageProcessor

    return not isinstance(CLIPImageProcessor().size, dict)


def _anyres_processor_view(orig):
    @functools.wraps(orig)
    def process_anyres_image(image, processor, grid_pinpoints, *args, **kwargs):
        if not isinstance(processor, _ProcessorView):
            processor = _ProcessorView(processor)
        return orig(image, processor, grid_pinpoints, *args, **kwargs)

    return process_anyres_image


def _size_apply() -> None:
    mm_utils = importlib.import_module("llava.mm_utils")
    _shim(mm_utils, "process_anyres_image", _anyres_processor_view, "image_processor_size", rebind=True)


_CAUSAL_LM_CLASSES = (
    ("llava.model.language_model.llava_llama", "LlavaLlamaForCausalLM"),
    ("llava.model.language_model.llava_mistral", "LlavaMistralForCausalLM"),
    ("llava.model.language_model.llava_qwen", "LlavaQwenForCausalLM"),  # LLaVA-NeXT
)


def _forward_kwargs_needed() -> bool:
    from llava.model.language_model.llava_llama import LlavaLlamaForCausalLM
    from transformers import LlamaForCausalLM

    params = _params(LlavaLlamaForCausalLM.forward)
    return "cache" in _params(LlamaForCausalLM.forward) and "cache" not in params and "kwargs" not in params


def _forward_drops_new_kwargs(orig):
    accepted = set(_params(orig))

    @functools.wraps(orig)
    def forward(self, *args, **kwargs):
        if "cache" in kwargs and "cache" not in accepted:
            cache = kwargs.pop("cache")
            if kwargs.get("past_key_values") is None:
                kwargs["past_key_values"] = cache
        # generation-only extras llava's forward predates (cache_position, logits_to_keep, ...)
        for key in [k for k in kwargs if k not in accepted]:
            kwargs.pop(key)
        return orig(self, *args, **kwargs)

    return forward


def _forward_kwargs_apply() -> None:
    for module_name, cls_name in _CAUSAL_LM_CLASSES:
        cls = getattr(import_or_none(module_name), cls_name, None)  # not every language model in every flavour
        if cls is not None and "kwargs" not in _params(cls.forward):
            _shim(cls, "forward", _forward_drops_new_kwargs, "generate_forward_kwargs")


SHIMS: tuple[Shim, ...] = (
    Shim(
        "layernorm_import",
        "from transformers.trainer import ALL_LAYERNORM_LAYERS (ImportError)",
        "llava-torch 1.2.2 / LLaVA-NeXT on transformers >= 5",
        _layernorm_needed,
        _layernorm_apply,
    ),
    Shim(
        "trainer_tokenizer_kwarg",
        "Trainer(tokenizer=...) rejected, now processing_class",
        "transformers >= 5 (deprecated since 4.46)",
        _tokenizer_needed,
        _tokenizer_apply,
    ),
    Shim(
        "train_sampler_signature",
        "LLaVATrainer._get_train_sampler() called with train_dataset",
        "transformers >= 4.52",
        _sampler_needed,
        _sampler_apply,
    ),
    Shim(
        "create_optimizer_signature",
        "LLaVATrainer.create_optimizer() called with model",
        "transformers >= 4.54",
        _optimizer_needed,
        _optimizer_apply,
    ),
    Shim(
        "save_checkpoint_signature",
        "Trainer._save_checkpoint(model, trial) lost metrics",
        "transformers >= 4.47",
        _save_ckpt_needed,
        _save_ckpt_apply,
    ),
    Shim(
        "deepspeed_lazy_import",
        "maybe_zero_3 imports deepspeed at save time",
        "any install without deepspeed",
        _deepspeed_needed,
        _deepspeed_apply,
    ),
    Shim(
        "image_processor_size",
        "image_processor.size / crop_size are SizeDict, min(size) breaks",
        "transformers >= 5 (LLaVA-NeXT's process_anyres_image)",
        _size_needed,
        _size_apply,
    ),
    Shim(
        "generate_forward_kwargs",
        "generate() passes cache= (and cache_position, logits_to_keep) to forward",
        "transformers >= 5 (past_key_values renamed cache)",
        _forward_kwargs_needed,
        _forward_kwargs_apply,
    ),
)

_BEFORE_TRAIN_IMPORT = ("layernorm_import",)


def _run(shim: Shim) -> None:
    if shim.name in applied_shims():
        return
    try:
        needed = shim.needed()
    except Exception as exc:  # noqa: BLE001 - a hook point this llava flavour lacks (ImportError, AttributeError, ...)
        logger.warning(
            "biores llava shim %s not applied (%s: %s); it fixes: %s", shim.name, type(exc).__name__, exc, shim.fixes
        )
        return
    if needed:
        shim.apply()
        logger.info("biores llava shim applied: %s (%s; %s)", shim.name, shim.fixes, shim.versions)


def import_llava_train() -> Any:
    """Import ``llava.train.train`` with every shim applied (the module object)."""
    require_llava()
    for shim in SHIMS:
        if shim.name in _BEFORE_TRAIN_IMPORT:
            _run(shim)
    try:
        module = importlib.import_module("llava.train.train")
    except Exception as exc:
        raise BioresConfigError(
            f"llava.train.train failed to import after the biores shims ({type(exc).__name__}: {exc})"
        ) from None
    for shim in SHIMS:
        _run(shim)
    return module


def apply_shims() -> list[str]:
    """Apply every needed shim (idempotent); returns the names applied."""
    import_llava_train()
    return applied_shims()


def applied_shims() -> list[str]:
    """The shims in place now, in the order they were applied."""
    return installed(SHIM_GROUP)


def revert_shims() -> list[str]:
    """Put back every llava (and transformers) object the shims replaced; returns the attributes reverted."""
    return revert(SHIM_GROUP)
