"""Version-gated compatibility shims: the original ``llava`` package on current torch / transformers.

``llava-torch==1.2.2.post1`` (and LLaVA-NeXT, same package name) were written for transformers 4.36-4.40.
Every shim below wraps or adapts llava's OWN function; none re-implements it. Each one is gated on detecting
the drift it fixes (not on a version number alone), records the versions it was written for, and is
idempotent: ``apply_shims()`` may be called any number of times.

=============================  ==========================================================================
shim                           what breaks (versions) -> fix
=============================  ==========================================================================
``layernorm_import``           ``llava.train.llava_trainer`` does ``from transformers.trainer import
                               ALL_LAYERNORM_LAYERS``; transformers 5 no longer re-exports it there
                               (ImportError, so ``llava.train.train`` cannot even be imported) -> publish
                               ``transformers.pytorch_utils.ALL_LAYERNORM_LAYERS`` under that name before
                               llava's trainer module is imported.
``trainer_tokenizer_kwarg``    ``train()`` builds ``LLaVATrainer(model=..., tokenizer=..., ...)``;
                               transformers >= 5 removed ``Trainer(tokenizer=)`` (renamed
                               ``processing_class`` in 4.46) -> ``LLaVATrainer.__init__`` maps it.
``train_sampler_signature``    transformers >= 4.52 calls ``self._get_train_sampler(train_dataset)``;
                               llava's override takes no argument (TypeError) -> accept and route it.
``create_optimizer_signature`` transformers >= 4.54 may call ``self.create_optimizer(model)`` (FSDP / delayed
                               optimizer creation); llava's override takes no argument -> accept it and
                               build the groups on that model.
``save_checkpoint_signature``  llava's ``_save_checkpoint(model, trial, metrics=None)`` calls
                               ``super()._save_checkpoint(model, trial, metrics)``; transformers >= 4.47
                               dropped ``metrics`` (TypeError at the first checkpoint) -> call the parent
                               with the arguments it accepts; llava's adapter-only branch is kept.
``deepspeed_lazy_import``      ``maybe_zero_3`` (``llava.train.train`` and ``llava.train.llava_trainer``)
                               imports ``deepspeed`` unconditionally at save time (adapter / LoRA saves):
                               ImportError without deepspeed, which torch 2.14 CPU installs lack -> only
                               call llava's function for ZeRO-partitioned parameters (``ds_id``).
``image_processor_size``       transformers 5 image processors keep ``size`` / ``crop_size`` as a
                               ``SizeDict`` (not a ``dict``): LLaVA-NeXT's ``process_anyres_image`` then
                               takes ``min(processor.size)`` (a ``(key, value)`` tuple) or
                               ``processor.size[0]`` (KeyError) -> ``process_anyres_image`` receives a
                               read-through proxy whose ``size`` / ``crop_size`` are plain dicts that also
                               answer ``[0]`` / ``min()`` with the encoder size.
``generate_forward_kwargs``    transformers 5 generation calls ``model(cache=..., cache_position=...,
                               logits_to_keep=...)``; llava's ``Llava*ForCausalLM.forward`` has a fixed
                               4.x signature (TypeError at the first generated token) -> ``cache`` is handed
                               to llava's ``past_key_values`` and extras it predates are dropped.
=============================  ==========================================================================
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

__all__ = [
    "LLAVA_INSTALL",
    "SHIMS",
    "Shim",
    "applied_shims",
    "apply_shims",
    "import_llava_train",
    "rebind_llava_name",
    "require_llava",
]

logger = logging.getLogger("biores.llava")

#: How CI / users install the original LLaVA without letting it downgrade torch / transformers.
LLAVA_INSTALL = "pip install --no-deps llava-torch==1.2.2.post1"

_MARK = "__biores_shim__"
_APPLIED: list[str] = []


def require_llava() -> Any:
    """Import ``llava`` or raise a one-line error with the install command."""
    try:
        import llava  # noqa: F401
    except Exception as exc:  # ImportError, or llava's own import failing
        raise BioresConfigError(
            f"the original LLaVA package is not importable ({type(exc).__name__}: {exc}); install it with: {LLAVA_INSTALL}"
        ) from None
    return sys.modules["llava"]


def _params(fn: Callable) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # pragma: no cover
        return []


def _is_shimmed(fn: Any, name: str) -> bool:
    return getattr(fn, _MARK, None) == name


def _mark(fn: Callable, name: str) -> Callable:
    setattr(fn, _MARK, name)
    return fn


def rebind_llava_name(module_name: str, attr: str, new: Callable) -> Callable | None:
    """Replace ``module.attr`` and every already-imported ``llava*`` module's reference to the old object.

    Needed for functions that llava modules import by name (``from llava.mm_utils import process_images``).
    Returns the replaced object (None when the module or attribute does not exist: the hook is skipped).
    """
    try:
        module = importlib.import_module(module_name)
    except Exception:
        return None
    old = getattr(module, attr, None)
    if old is None:
        return None
    for mod in list(sys.modules.values()):
        name = getattr(mod, "__name__", "") or ""
        if (name == "llava" or name.startswith("llava.")) and getattr(mod, attr, None) is old:
            setattr(mod, attr, new)
    return old


@dataclass(frozen=True)
class Shim:
    name: str
    fixes: str
    versions: str
    needed: Callable[[], bool]
    apply: Callable[[], None]


# ----------------------------------------------------------------------------------------------- the shims
def _layernorm_needed() -> bool:
    import transformers.trainer as trainer_mod

    return not hasattr(trainer_mod, "ALL_LAYERNORM_LAYERS")


def _layernorm_apply() -> None:
    import transformers.trainer as trainer_mod
    from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS

    trainer_mod.ALL_LAYERNORM_LAYERS = ALL_LAYERNORM_LAYERS


def _trainer_cls():
    from llava.train.llava_trainer import LLaVATrainer

    return LLaVATrainer


def _tokenizer_needed() -> bool:
    from transformers import Trainer

    return "tokenizer" not in _params(Trainer.__init__) and "processing_class" in _params(Trainer.__init__)


def _tokenizer_apply() -> None:
    cls = _trainer_cls()
    orig = cls.__init__
    if _is_shimmed(orig, "trainer_tokenizer_kwarg"):
        return

    @functools.wraps(orig)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "tokenizer" in kwargs:
            tokenizer = kwargs.pop("tokenizer")
            kwargs.setdefault("processing_class", tokenizer)
        orig(self, *args, **kwargs)

    cls.__init__ = _mark(__init__, "trainer_tokenizer_kwarg")


def _sampler_needed() -> bool:
    from transformers import Trainer

    cls = _trainer_cls()
    return "train_dataset" in _params(Trainer._get_train_sampler) and len(_params(cls._get_train_sampler)) == 1


def _sampler_apply() -> None:
    cls = _trainer_cls()
    orig = cls._get_train_sampler
    if _is_shimmed(orig, "train_sampler_signature"):
        return

    @functools.wraps(orig)
    def _get_train_sampler(self, train_dataset=None):
        if train_dataset is None or train_dataset is self.train_dataset:
            return orig(self)
        saved, self.train_dataset = self.train_dataset, train_dataset
        try:
            return orig(self)
        finally:
            self.train_dataset = saved

    cls._get_train_sampler = _mark(_get_train_sampler, "train_sampler_signature")


def _optimizer_needed() -> bool:
    from transformers import Trainer

    cls = _trainer_cls()
    return "model" in _params(Trainer.create_optimizer) and len(_params(cls.create_optimizer)) == 1


def _optimizer_apply() -> None:
    cls = _trainer_cls()
    orig = cls.create_optimizer
    if _is_shimmed(orig, "create_optimizer_signature"):
        return

    @functools.wraps(orig)
    def create_optimizer(self, model=None):
        if model is None or model is self.model:
            return orig(self)
        # llava's grouping reads self.model: point it at the model the trainer wants optimised.
        saved, self.model = self.model, model
        try:
            return orig(self)
        finally:
            self.model = saved

    cls.create_optimizer = _mark(create_optimizer, "create_optimizer_signature")


def _save_ckpt_needed() -> bool:
    from transformers import Trainer

    cls = _trainer_cls()
    return "metrics" not in _params(Trainer._save_checkpoint) and "metrics" in _params(cls._save_checkpoint)


def _save_ckpt_apply() -> None:
    cls = _trainer_cls()
    orig = cls._save_checkpoint
    if _is_shimmed(orig, "save_checkpoint_signature"):
        return
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

    cls._save_checkpoint = _mark(_save_checkpoint, "save_checkpoint_signature")


def _deepspeed_needed() -> bool:
    try:
        import deepspeed  # noqa: F401
    except Exception:
        return True
    return False


def _deepspeed_apply() -> None:
    for module_name in ("llava.train.train", "llava.train.llava_trainer"):
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        orig = getattr(module, "maybe_zero_3", None)
        if orig is None or _is_shimmed(orig, "deepspeed_lazy_import"):
            continue

        def make(orig: Callable) -> Callable:
            @functools.wraps(orig)
            def maybe_zero_3(param, ignore_status=False, name=None):
                if hasattr(param, "ds_id"):  # a ZeRO-3 partitioned parameter: deepspeed is really in use
                    return orig(param, ignore_status=ignore_status, name=name)
                return param.detach().cpu().clone()

            return _mark(maybe_zero_3, "deepspeed_lazy_import")

        module.maybe_zero_3 = make(orig)


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
    except Exception:
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


def _size_apply() -> None:
    mm_utils = importlib.import_module("llava.mm_utils")
    orig = getattr(mm_utils, "process_anyres_image", None)
    if orig is None or _is_shimmed(orig, "image_processor_size"):
        return

    @functools.wraps(orig)
    def process_anyres_image(image, processor, grid_pinpoints, *args, **kwargs):
        if not isinstance(processor, _ProcessorView):
            processor = _ProcessorView(processor)
        return orig(image, processor, grid_pinpoints, *args, **kwargs)

    rebind_llava_name("llava.mm_utils", "process_anyres_image", _mark(process_anyres_image, "image_processor_size"))


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


def _forward_kwargs_apply() -> None:
    for module_name, cls_name in _CAUSAL_LM_CLASSES:
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
        except Exception:
            continue  # that language model does not exist in this llava flavour
        orig = cls.forward
        if _is_shimmed(orig, "generate_forward_kwargs"):
            continue
        accepted = set(_params(orig))
        if "kwargs" in accepted:
            continue

        def make(orig: Callable, accepted: set[str]) -> Callable:
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

            return _mark(forward, "generate_forward_kwargs")

        cls.forward = make(orig, accepted)


SHIMS: tuple[Shim, ...] = (
    Shim("layernorm_import", "from transformers.trainer import ALL_LAYERNORM_LAYERS (ImportError)",
         "llava-torch 1.2.2 / LLaVA-NeXT on transformers >= 5", _layernorm_needed, _layernorm_apply),
    Shim("trainer_tokenizer_kwarg", "Trainer(tokenizer=...) rejected, now processing_class",
         "transformers >= 5 (deprecated since 4.46)", _tokenizer_needed, _tokenizer_apply),
    Shim("train_sampler_signature", "LLaVATrainer._get_train_sampler() called with train_dataset",
         "transformers >= 4.52", _sampler_needed, _sampler_apply),
    Shim("create_optimizer_signature", "LLaVATrainer.create_optimizer() called with model",
         "transformers >= 4.54", _optimizer_needed, _optimizer_apply),
    Shim("save_checkpoint_signature", "Trainer._save_checkpoint(model, trial) lost metrics",
         "transformers >= 4.47", _save_ckpt_needed, _save_ckpt_apply),
    Shim("deepspeed_lazy_import", "maybe_zero_3 imports deepspeed at save time",
         "any install without deepspeed", _deepspeed_needed, _deepspeed_apply),
    Shim("image_processor_size", "image_processor.size / crop_size are SizeDict, min(size) breaks",
         "transformers >= 5 (LLaVA-NeXT's process_anyres_image)", _size_needed, _size_apply),
    Shim("generate_forward_kwargs", "generate() passes cache= (and cache_position, logits_to_keep) to forward",
         "transformers >= 5 (past_key_values renamed cache)", _forward_kwargs_needed, _forward_kwargs_apply),
)

_BEFORE_TRAIN_IMPORT = ("layernorm_import",)


def _run(shim: Shim) -> None:
    if shim.name in _APPLIED:
        return
    try:
        needed = shim.needed()
    except Exception as exc:  # a hook point that does not exist in this llava flavour: skip cleanly
        logger.debug("biores llava shim %s skipped: %s", shim.name, exc)
        return
    if needed:
        shim.apply()
        _APPLIED.append(shim.name)
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
    """Apply every needed shim (idempotent); returns the names applied so far."""
    import_llava_train()
    return list(_APPLIED)


def applied_shims() -> list[str]:
    return list(_APPLIED)
