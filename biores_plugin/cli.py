"""The ``biores`` console command.

Subcommands register themselves through :data:`SUBCOMMANDS`: each entry names a module with
``add_arguments(parser)`` and ``run(args) -> int``. Imports happen only for the subcommand
that runs, so ``biores info`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .errors import BioresError

#: name -> (module, help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "biores_plugin.demo",
        "the offline demo: train low/native/mixed tiny LLaVAs, evaluate with lmms-eval, report",
    ),
    "info": ("biores_plugin.cli", "size before/after and visual tokens of images under resolution policies"),
    "synth": ("biores_plugin.synth.cli", "generate the offline synthetic resolution benchmark"),
    "report": (
        "biores_plugin.report",
        "tables and plots from lmms-eval results: accuracy vs resolution, train x inference",
    ),
    "tasks": (
        "biores_plugin.task_authoring.taskgen",
        "list the lmms-eval task folders or write a sweep for other resolutions",
    ),
    "sweep": (
        "biores_plugin.task_authoring.wrap",
        "wrap any lmms-eval task (upstream or --include_path) into a resolution sweep",
    ),
    "export-task": (
        "biores_plugin.task_authoring.export",
        "write a self-contained lmms-eval task folder (no biores import) for a data set biores adds",
    ),
    "run": ("biores_plugin.task_authoring.run", "pixel-budget sweep: lmms-eval once per --max-pixels budget"),
}


# --------------------------------------------------------------------------- biores info


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "images", nargs="+", help="image files (PNG, JPEG, TIFF incl. 16-bit / multi-channel, OME-TIFF pyramids, DICOM)"
    )
    parser.add_argument(
        "--mpp",
        type=_positive_float,
        default=None,
        help="read each image at this pixel size in micrometres per pixel (pyramid level + exact resampling; "
        "never finer than stored)",
    )
    parser.add_argument(
        "--policy",
        action="append",
        default=None,
        help="policy to apply; repeat for several (default: pad, anyres, native, 448). "
        "Forms: native, pad[SIZE], crop[SIZE], square, stretch, anyres, anyres_max_N, SIZE (longest side, then native)",
    )
    from .resolution import add_resolution_arguments

    # generated from ResolutionConfig; the underscore spellings are those of biores-train and its messages
    add_resolution_arguments(
        parser, ("patch_size", "merge_size", "min_pixels", "max_pixels", "image_size"), dashes=True, patch_size=14
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of micrometres per pixel, got {text!r}")
    return value


def info_configs(policies: Sequence[str], **options: Any) -> list[Any]:
    """One validated :class:`ResolutionConfig` per policy; pixel budgets go to native-like ones."""
    from .errors import BioresConfigError
    from .resolution import ResolutionConfig, is_native_like

    budget = {key: options.get(key) for key in ("min_pixels", "max_pixels")}
    given = [f"--{key.replace('_', '-')}" for key, value in budget.items() if value is not None]
    if given and not any(is_native_like(spec) for spec in policies):
        verb = "applies" if len(given) == 1 else "apply"
        raise BioresConfigError(f"{'/'.join(given)} only {verb} to native policies (native or a size such as 448)")
    return [
        ResolutionConfig(
            image_aspect_ratio=spec,
            patch_size=options.get("patch_size", 14),
            merge_size=options.get("merge_size", 1),
            image_size=options.get("image_size", 336),
            **(budget if is_native_like(spec) else {}),
        )
        for spec in policies
    ]


def info_rows(paths: Sequence[str], policies: Sequence[str], **options: Any) -> list[dict[str, Any]]:
    """One row per (image, policy): original size, model-input size, visual tokens.

    The flags are checked before any image is read; every image is then decoded in full
    (``image_size(verify=True)``), so a truncated or corrupt file is an error, not a row.
    """
    from .image_io import image_meta, image_size, load_image

    policy_objects = [config.policy() for config in info_configs(policies, **options)]
    target = options.get("mpp")
    rows = []
    for path in paths:
        meta = image_meta(path)
        if target is None:
            width, height = image_size(path, verify=True)
        else:  # decodes the pyramid level that serves the target, not the base level
            width, height = load_image(path, mpp=target).size
        stored = meta.get("mpp")
        physical = {
            "format": meta["format"],
            "frames": meta.get("frames", 1),
            "stored_width": meta["width"],
            "stored_height": meta["height"],
            "pixel_spacing_mm": meta.get("pixel_spacing_mm"),
            "mpp": None if stored is None else stored * meta["width"] / width,
            "stored_mpp": stored,
        }
        for policy in policy_objects:
            out_w, out_h = policy.resize_target(width, height)
            rows.append(
                {
                    "image": str(path),
                    "policy": policy.name,
                    "width": width,
                    "height": height,
                    "out_width": out_w,
                    "out_height": out_h,
                    "visual_tokens": policy.visual_tokens(width, height),
                    **physical,
                }
            )
    return rows


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A plain aligned text table (``columns`` = [(key, header)])."""
    cells = [[header for _, header in columns]] + [[str(row[key]) for key, _ in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    policies = args.policy or ["pad", "anyres", "native", "448"]
    rows = info_rows(
        args.images,
        policies,
        patch_size=args.patch_size,
        merge_size=args.merge_size,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        image_size=args.image_size,
        mpp=args.mpp,
    )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        row["before"] = f"{row['width']}x{row['height']}"
        row["after"] = f"{row['out_width']}x{row['out_height']}"
        row["um_px"] = "-" if row["mpp"] is None else f"{row['mpp']:.4g}"
    columns = [("image", "image"), ("policy", "policy"), ("before", "before"), ("after", "after")]
    columns += [("um_px", "um/px"), ("visual_tokens", "visual tokens")]
    print(format_table(rows, columns))
    return 0


# --------------------------------------------------------------------------- entry point


class OneLineParser(argparse.ArgumentParser):
    """Flag errors are one stderr line (no usage block) and exit status 2, for every subcommand."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(str(message).split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = OneLineParser(prog="biores", description="Native- and mixed-resolution biomedical MLLMs.")
    parser.add_argument("--version", action="version", version=f"biores {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Two-stage parse: find the subcommand, then let its module add its own arguments.
    first, _ = parser.parse_known_args(argv[:1] if argv and not argv[0].startswith("-") else argv)
    module = importlib.import_module(first._module)
    sub_parser = parser._subparsers._group_actions[0].choices[first.command]  # type: ignore[union-attr]
    try:
        module.add_arguments(sub_parser)
        if getattr(module, "PASSTHROUGH", False):  # flags it does not know go on to the tool it runs
            args, args.passthrough = parser.parse_known_args(argv)
        else:
            args = parser.parse_args(argv)
    except BioresError as exc:  # a type converter or an option check refused a value
        print(f"biores {first.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    try:
        return int(module.run(args) or 0)
    except BioresError as exc:
        print(f"biores {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"biores {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
