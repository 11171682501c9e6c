"""Write lmms-eval sweep folders: one variant yaml per inference resolution plus a group.

A folder's ``_default_template_yaml`` makes the sweep named after the folder, each
``_<kind>_template_yaml`` one named ``<folder>_<kind>`` (``_direct``: the fast direct-answer
variant). The shipped folders under ``tasks/`` are this module's output (a test checks they
match); ``biores tasks --dataset vqa_rad --resolutions 336,672,native --out DIR`` writes others.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import BioresConfigError
from ..io_utils import atomic_write_text
from ..resolution import DEFAULT_RESOLUTIONS, parse_levels, resolution_label
from ..resolution.levels import level_display

TEMPLATE = "_default_template_yaml"
#: data sets whose rows carry the pixel size that µm/px levels (``2um``, ``0.5um``) need: the column
PIXEL_SIZE_DATASETS = {"ubench": "microns_per_pixel"}


def folder_sweeps(folder: Path) -> dict[str, str]:
    """``{sweep prefix: template file}`` of one task folder."""
    out = {}
    for template in sorted(folder.glob("_*template_yaml")):
        kind = template.name[1 : -len("template_yaml")].rstrip("_")
        out[folder.name if kind == "default" else f"{folder.name}_{kind}"] = template.name
    return out


def shipped_datasets() -> dict[str, Path]:
    """``{dataset: folder}`` for every task folder biores ships with templates (``tasks/biores_<dataset>``)."""
    from ..task_library.folders import tasks_dir

    root = tasks_dir()
    return {
        p.name[len("biores_") :]: p
        for p in sorted(root.iterdir())
        if p.is_dir() and p.name.startswith("biores_") and folder_sweeps(p)
    }


def variant_yaml(task: str, resolution: int, template: str = TEMPLATE) -> str:
    label = resolution_label(resolution)
    what = "native resolution (no resizing)" if label == "native" else f"longest side {label} px (downsampled only)"
    if resolution < 0:
        what = f"{level_display(label)} (from each image's pixel size; never upsampled)"
    return f"# {what}\ninclude: {template}\ntask: {task}_{label}\nprocess_docs: !function utils.process_docs_{label}\n"


def group_yaml(task: str, resolutions: Sequence[int]) -> str:
    subtasks = "".join(f"  - {task}_{resolution_label(r)}\n" for r in resolutions)
    return (
        f"group: {task}_sweep\n"
        f"task:\n{subtasks}"
        "aggregate_metric_list:\n"
        "  - metric: accuracy\n"
        "    aggregation: mean\n"
        "    weight_by_size: true\n"
        "metadata:\n"
        "  version: 1.0\n"
    )


def write_sweep(
    folder: str | Path,
    task: str,
    resolutions: Iterable[int | str] = DEFAULT_RESOLUTIONS,
    *,
    prune: bool = True,
    template: str = TEMPLATE,
) -> list[Path]:
    """Write ``<task>_<res>.yaml`` for each resolution and ``<task>_sweep.yaml`` into ``folder``.

    With ``prune``, variant yamls of this task for resolutions not asked for are removed.
    """
    folder = Path(folder)
    values = parse_levels(resolutions)
    written = []
    wanted = {f"{task}_{resolution_label(r)}.yaml" for r in values} | {f"{task}_sweep.yaml"}
    if prune:
        for old in folder.glob(f"{task}_*.yaml"):
            label = old.stem[len(task) + 1 :]
            if old.name not in wanted and (label.isdigit() or label == "native" or level_display(label) != label):
                old.unlink()
    for r in values:
        written.append(
            atomic_write_text(folder / f"{task}_{resolution_label(r)}.yaml", variant_yaml(task, r, template))
        )
    written.append(atomic_write_text(folder / f"{task}_sweep.yaml", group_yaml(task, values)))
    return written


def write_custom_sweep(
    dataset: str, resolutions: Iterable[int | str], out: str | Path, name: str | None = None
) -> Path:
    """A task folder for ``dataset`` at other resolutions (for ``--include_path``): the shipped
    folder's templates with utils re-exported, and for a wrapped data set (SLAKE, MicroVQA) the
    lmms-eval task wrapped again (``biores sweep``)."""
    from .wrap import SHIPPED, Source, write_task_sweep

    datasets = shipped_datasets()
    wrapped = {prefix[len("biores_") :]: spec for prefix, spec in SHIPPED.items()}
    if dataset not in datasets and dataset not in wrapped:
        raise BioresConfigError(
            f"unknown dataset {dataset!r}; biores ships: {', '.join(sorted({*datasets, *wrapped}))}"
        )
    task = name or f"biores_{dataset}_r"
    if not task.replace("_", "").isalnum():
        raise BioresConfigError(f"task name must be letters, digits and underscores, got {task!r}")
    if task == f"biores_{dataset}":
        raise BioresConfigError(f"{task!r} would clash with the shipped tasks; pick another --name")
    levels = parse_levels(resolutions)
    labels = [resolution_label(r) for r in levels]
    if any(r < 0 for r in levels) and dataset not in PIXEL_SIZE_DATASETS:
        raise BioresConfigError(
            f"pixel-size levels "
            f"({', '.join(level_display(label) for label in labels if level_display(label) != label)}) "
            f"need a data set that carries each image's pixel size ({', '.join(sorted(PIXEL_SIZE_DATASETS))}); "
            f"{dataset} does not: use longest sides in pixels"
        )
    if dataset in wrapped:
        import lmms_eval

        rel, source_task, extras = wrapped[dataset]
        yaml_path = Path(lmms_eval.__file__).resolve().parent / "tasks" / rel
        folder = write_task_sweep(Source(source_task, str(yaml_path)), out, resolutions, prefix=task, extras=extras)
        if dataset not in datasets:
            return folder
    source = datasets[dataset]
    folder = Path(out) / task
    folder.mkdir(parents=True, exist_ok=True)
    module = f"biores_plugin.tasks.{source.name}.utils"
    atomic_write_text(
        folder / "utils.py",
        f'"""Generated by `biores tasks`: reuses {module}."""\n\n'
        f"from {module} import *  # noqa: F401,F403\n"
        f"from {module} import __getattr__  # noqa: F401  (process_docs_<resolution>)\n",
    )
    sweeps = []
    for prefix, template in folder_sweeps(source).items():
        shutil.copyfile(source / template, folder / template)
        custom = task + prefix[len(source.name) :]  # biores_x_direct -> <task>_direct
        write_sweep(folder, custom, resolutions, template=template)
        sweeps.append(custom)
    if dataset in wrapped:
        return folder
    atomic_write_text(
        folder / "README.md",
        f"# {task}\n\nGenerated by `biores tasks --dataset {dataset} --resolutions {','.join(labels)}`.\n\n"
        f"```bash\nlmms-eval --include_path {Path(out).resolve()} --model MODEL --model_args ... \\\n"
        f"    --tasks {','.join(f'{s}_sweep' for s in sweeps)} --log_samples --output_path results/\n```\n",
    )
    return folder


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--list", action="store_true", help="list the shipped data sets and their task folders")
    parser.add_argument("--path", action="store_true", help="print the folder to pass as lmms-eval --include_path")
    parser.add_argument("--dataset", help="data set to write a sweep for (see --list)")
    parser.add_argument(
        "--resolutions",
        default=",".join(map(str, DEFAULT_RESOLUTIONS)),
        help="comma list, e.g. 128,256,512,native, or pixel sizes 2um,1um,0.5um,native (ubench)",
    )
    parser.add_argument("--out", help="folder to write the task folder into")
    parser.add_argument("--name", help="task name prefix (default biores_<dataset>_r)")


def run(args: argparse.Namespace) -> int:
    from ..task_library.folders import tasks_dir

    if args.path:
        print(tasks_dir())
        return 0
    if args.list or not args.dataset:
        from .wrap import SHIPPED

        for dataset, folder in shipped_datasets().items():
            for prefix in folder_sweeps(folder):
                print(f"{dataset:<10} {prefix}_sweep  {folder}")
        for prefix, (rel, source_task, _extras) in SHIPPED.items():
            print(f"{prefix[len('biores_') :]:<10} {prefix}_sweep  lmms-eval's {source_task} wrapped ({rel})")
        return 0
    if not args.out:
        raise BioresConfigError("--out is required with --dataset")
    folder = write_custom_sweep(
        args.dataset, [r for r in args.resolutions.split(",") if r.strip()], args.out, args.name
    )
    print(
        f"wrote {folder}; run with: lmms-eval --include_path {Path(args.out).resolve()} --tasks {folder.name}_sweep ..."
    )
    return 0
