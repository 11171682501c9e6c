"""``python -m biores_plugin.original_llava.train <llava flags>``: LLaVA's own ``train()`` with biores resolutions.

The ``train_mem.py`` pattern: apply the shims and hooks, then call ``llava.train.train.train()``. LLaVA's
``DataArguments`` gain ``--image_aspect_ratio native``, ``--min_pixels`` / ``--max_pixels``,
``--mixed_resolution`` (seeded by ``--seed``) and ``--image_grid_pinpoints`` (docs/llava.md). Flags are
checked first without importing torch / transformers / llava, then by ``HfArgumentParser``; any error
exits with status 2 and ONE line on stderr, never a traceback.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from biores_plugin.errors import BioresError

__all__ = ["extend_argument_classes", "main", "parse_and_validate", "preflight"]

_PROG = "biores-llava"


#: the resolution flags LLaVA's ``DataArguments`` gain, declared by ResolutionConfig (LLaVA's default: square)
_FLAGS = ("image_aspect_ratio", "min_pixels", "max_pixels", "mixed_resolution")
_LLAVA_DEFAULTS = {"image_aspect_ratio": "square"}


def _new_fields(base: type) -> list[tuple[str, Any, Any]]:
    from biores_plugin.resolution import resolution_fields

    have = {f.name for f in dataclasses.fields(base)}
    fields = resolution_fields(_FLAGS, **_LLAVA_DEFAULTS)
    fields.append(
        (
            "pack_sequences",
            bool,
            dataclasses.field(
                default=False,
                metadata={
                    "help": "padding-free training batches: the samples of a batch in one row (same loss as padding)"
                },
            ),
        )
    )
    if "image_grid_pinpoints" not in have:
        fields.append(
            (
                "image_grid_pinpoints",
                Optional[str],
                dataclasses.field(
                    default=None,
                    metadata={"help": "anyres grid pinpoints, e.g. '[(336, 672), (672, 336), (672, 672)]'"},
                ),
            )
        )
    return fields


def extend_argument_classes(train_module: Any) -> tuple[type, type, type]:
    """LLaVA's three argument dataclasses, ``DataArguments`` extended with the biores flags.

    The extended class is also installed as ``train_module.DataArguments`` because ``train()`` looks the
    classes up at call time. Idempotent.
    """
    data_cls = train_module.DataArguments
    if not getattr(data_cls, "__biores__", False):
        data_cls = dataclasses.make_dataclass("DataArguments", _new_fields(data_cls), bases=(data_cls,))
        data_cls.__biores__ = True
        data_cls.__module__ = __name__
        data_cls.__doc__ = "LLaVA's DataArguments plus the biores resolution flags."
        train_module.DataArguments = data_cls
    return train_module.ModelArguments, data_cls, train_module.TrainingArguments


def _parser(classes: Sequence[type]):
    from transformers import HfArgumentParser

    class _OneLineParser(HfArgumentParser):
        def error(self, message: str):  # argparse's usage block is hundreds of lines for these dataclasses
            raise BioresError(message.splitlines()[0] if message else "invalid arguments")

    return _OneLineParser(tuple(classes))


def parse_and_validate(argv: Sequence[str], train_module: Any):
    """``(model_args, data_args, training_args, resolution_config_or_None)``; BioresError on any bad flag."""
    from biores_plugin.original_llava.resolution import check_resolution_flags

    classes = extend_argument_classes(train_module)
    try:
        model_args, data_args, training_args = _parser(classes).parse_args_into_dataclasses(args=list(argv))
    except BioresError:
        raise
    except (ValueError, TypeError) as exc:  # leftover arguments, TrainingArguments.__post_init__ checks
        raise BioresError(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from None
    resolution = check_resolution_flags(
        data_args.image_aspect_ratio,
        min_pixels=data_args.min_pixels,
        max_pixels=data_args.max_pixels,
        mixed_resolution=data_args.mixed_resolution,
        mm_patch_merge_type=getattr(model_args, "mm_patch_merge_type", "flat"),
    )
    return model_args, data_args, training_args, resolution


def preflight(argv: Sequence[str]) -> dict[str, Any] | None:
    """Validate the biores flags from the raw command line, importing nothing heavy (BioresError if bad)."""
    import argparse

    from biores_plugin.original_llava.resolution import check_resolution_flags

    class _Pre(argparse.ArgumentParser):
        def error(self, message: str):
            raise BioresError(message.splitlines()[0] if message else "invalid arguments")

    pre = _Pre(add_help=False, allow_abbrev=False)
    from biores_plugin.resolution import add_resolution_arguments

    add_resolution_arguments(
        pre, _FLAGS, dashes=True, typed=False, **_LLAVA_DEFAULTS
    )  # values checked below, one line each
    for name, default in (("mm_patch_merge_type", "flat"), ("seed", "42")):  # LLaVA's own flags
        pre.add_argument(f"--{name}", f"--{name.replace('_', '-')}", dest=name, default=default)
    known, _ = pre.parse_known_args(list(argv))

    def as_int(flag: str, value: Any) -> int | None:
        if value is None:
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise BioresError(f"argument --{flag}: invalid int value: {value!r}") from None

    as_int("seed", known.seed)
    return check_resolution_flags(
        known.image_aspect_ratio,
        min_pixels=as_int("min_pixels", known.min_pixels),
        max_pixels=as_int("max_pixels", known.max_pixels),
        mixed_resolution=known.mixed_resolution,
        mm_patch_merge_type=known.mm_patch_merge_type,
    )


def _pinpoints(value: Any) -> Any:
    """``--image_grid_pinpoints`` as llava stores it in ``model.config`` (a list when it parses as one)."""
    if not isinstance(value, str):
        return value
    import ast

    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value  # LLaVA-NeXT's "(1x1),...,(6x6)" form stays a string
    return [list(p) for p in parsed] if isinstance(parsed, (list, tuple)) else value


def _fail(message: str) -> int:
    print(f"{_PROG}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        preflight(argv)  # fast: biores flags only, nothing heavy imported yet
        from biores_plugin.original_llava import hooks
        from biores_plugin.original_llava.shims import applied_shims, import_llava_train

        train_module = import_llava_train()
        _model_args, data_args, training_args, resolution = parse_and_validate(argv, train_module)
        installed = hooks.install_hooks(train_module)
        from biores_plugin.original_llava.packing import set_packing

        set_packing(bool(getattr(data_args, "pack_sequences", False)))
        state = None
        if resolution is not None:
            log_path = Path(training_args.output_dir) / hooks.LOG_NAME
            state = hooks.NativeState(resolution, seed=training_args.seed, log_path=log_path)
        hooks.activate(state, {"image_grid_pinpoints": _pinpoints(getattr(data_args, "image_grid_pinpoints", None))})
        hooks.log_event(
            "flags",
            image_aspect_ratio=data_args.image_aspect_ratio,
            min_pixels=data_args.min_pixels,
            max_pixels=data_args.max_pixels,
            mixed_resolution=data_args.mixed_resolution,
            seed=training_args.seed,
            pack_sequences=bool(getattr(data_args, "pack_sequences", False)),
            resolution=resolution.to_dict() if resolution is not None else None,
            mixed=state.mixed.to_dict() if state is not None and state.mixed is not None else None,
            shims=applied_shims(),
            hooks=installed,
        )
    except BioresError as exc:
        return _fail(str(exc))

    # llava's train() parses sys.argv itself (with the extended DataArguments installed above).
    saved_argv = sys.argv
    sys.argv = [saved_argv[0] if saved_argv else "biores_plugin.original_llava.train", *argv]
    try:
        train_module.train()
    except BioresError as exc:  # e.g. the tower's real patch size makes the pixel budget impossible
        return _fail(str(exc))
    finally:
        sys.argv = saved_argv
    if state is not None and training_args.local_rank in (-1, 0):
        out = Path(training_args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        state.resolution.save_pretrained(out)
    from biores_plugin.train.sharded import close_process_group

    close_process_group()  # torchrun / deepspeed ranks end in order (pytorch#190489)
    return 0


if __name__ == "__main__":
    sys.exit(main())
