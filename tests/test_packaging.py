"""The wheel a newcomer installs: built from a copy of the tree (no warnings), holding the task
folders, ds_configs and patches, and importable from the unpacked wheel alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _shipping_folders() -> set[str]:
    """Every folder of the tree that ships files, as the package name it installs under."""
    found = set()
    for base, name in (
        (ROOT / "biores_plugin", "biores_plugin"),
        (ROOT / "tasks", "biores_plugin.tasks"),
        (ROOT / "patches", "biores_plugin.patches"),
    ):
        for folder in [base, *(p for p in base.rglob("*") if p.is_dir())]:
            if folder.name == "__pycache__" or not any(f.is_file() and f.suffix != ".pyc" for f in folder.iterdir()):
                continue
            rel = folder.relative_to(base).parts
            found.add(".".join((name, *rel)))
    return found


def test_package_list_matches_the_tree():
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]) == _shipping_folders()


def test_pins_are_the_tested_ranges():
    from biores_plugin.versions import TESTED

    deps = {
        d.split(">")[0].split("=")[0].split("<")[0].strip(): d.split(" ")[0]
        for d in PYPROJECT["project"]["dependencies"]
    }
    for package, (low, high) in TESTED.items():
        assert deps[package] == f"{package}>={low},<{high}"


def test_a_version_outside_the_tested_range_is_one_line_where_it_matters(monkeypatch):
    import transformers

    from biores_plugin import versions
    from biores_plugin.errors import BioresConfigError
    from biores_plugin.models.native_llava import _register_key_renaming

    assert versions.check_version("transformers", "anything") == transformers.__version__
    monkeypatch.setitem(versions.TESTED, "transformers", ("6.0", "7"))
    with pytest.raises(BioresConfigError) as err:
        _register_key_renaming()  # loading a LLaVA checkpoint relies on transformers' renaming table
    message = str(err.value)
    assert "\n" not in message and "key-renaming" in message and "transformers>=6.0,<7" in message
    assert f"found {transformers.__version__}" in message


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("biores_plugin", "tasks", "patches"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    wheels = list(out.glob("biores-*.whl"))
    assert len(wheels) == 1
    return wheels[0], run.stdout + run.stderr


def test_wheel_builds_without_warnings(wheel):
    _, log = wheel
    assert "would be ignored" not in log and "Warning" not in log, log[-3000:]


def test_wheel_holds_tasks_configs_and_patches(wheel):
    path, _ = wheel
    names = set(zipfile.ZipFile(path).namelist())
    for folder in (ROOT / "tasks").iterdir():
        for file in folder.iterdir() if folder.is_dir() else []:
            if file.is_file() and file.suffix != ".pyc":
                assert f"biores_plugin/tasks/{folder.name}/{file.name}" in names
    for file in (ROOT / "biores_plugin" / "train" / "ds_configs").iterdir():
        assert f"biores_plugin/train/ds_configs/{file.name}" in names
    assert {"biores_plugin/patches/varlen_vision.py", "biores_plugin/patches/lmms_eval_task_entrypoints.patch"} <= names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(path).read(entry_points).decode()
    assert "biores = biores_plugin.lmms_plugin.plugin:manifests" in text and "biores = biores_plugin.tasks" in text


def test_unpacked_wheel_imports_and_finds_its_tasks(wheel, tmp_path):
    path, _ = wheel
    zipfile.ZipFile(path).extractall(tmp_path / "site")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import biores_plugin, biores_plugin.models; "
        "from biores_plugin.task_library.folders import tasks_dir; "
        "print(biores_plugin.__file__); print(tasks_dir()); print(len(list(tasks_dir().glob('*/*.yaml'))))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "site")], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    module, tasks, yamls = run.stdout.split()
    assert (
        Path(module).is_relative_to(tmp_path / "site") and Path(tasks) == tmp_path / "site" / "biores_plugin" / "tasks"
    )
    assert int(yamls) == len(list((ROOT / "tasks").glob("*/*.yaml")))
