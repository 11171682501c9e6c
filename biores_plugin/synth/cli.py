"""``biores synth``: CLI hook (the lead wires :func:`add_arguments` / :func:`run` into ``biores``).

biores synth --out DIR [--generators a,b] [--n-train N] [--n-test N] [--size 256 | 384x256]
             [--seed S] [--workers K] [--overwrite] [--no-progress]
"""

from __future__ import annotations

import argparse
import sys

from ..errors import BioresError
from .dataset import DEFAULT_N_TEST, DEFAULT_N_TRAIN, _write_dataset, read_meta
from .generators import DEFAULT_GENERATORS, GENERATORS


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``synth`` options to ``parser`` (a sub-command parser)."""
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (train.parquet, test.parquet, meta.json)"
    )
    parser.add_argument(
        "--generators",
        default=",".join(DEFAULT_GENERATORS),
        metavar="A,B",
        help=f"comma-separated generators among {', '.join(GENERATORS)} (default: {','.join(DEFAULT_GENERATORS)})",
    )
    parser.add_argument(
        "--n-train",
        type=int,
        default=DEFAULT_N_TRAIN,
        metavar="N",
        help=f"train images per generator, two questions each (default: {DEFAULT_N_TRAIN})",
    )
    parser.add_argument(
        "--n-test",
        type=int,
        default=DEFAULT_N_TEST,
        metavar="N",
        help=f"test images per generator, two questions each (default: {DEFAULT_N_TEST})",
    )
    parser.add_argument("--size", default="256", metavar="N|WxH", help="native image size (default: 256)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: 1; output identical)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``biores synth``; print a one-line error and return 2 on a bad argument."""
    try:
        path, reused = _write_dataset(
            args.out,
            generators=args.generators,
            n_train=args.n_train,
            n_test=args.n_test,
            size=args.size,
            seed=args.seed,
            progress=not getattr(args, "no_progress", False),
            overwrite=args.overwrite,
            workers=getattr(args, "workers", 1),
        )
        meta = read_meta(path)
    except BioresError as exc:
        print(f"biores synth: error: {exc}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{s} {c['images']} images / {c['rows']} rows" for s, c in meta["counts"].items())
    state = "up to date (cached)" if reused else "written"
    print(f"{path}: {state}; {counts}; {meta['content_hash']}")
    return 0


def main(argv=None) -> int:  # pragma: no cover - convenience: python -m biores_plugin.synth.cli
    parser = add_arguments(argparse.ArgumentParser(prog="biores synth", description=__doc__.splitlines()[0]))
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
