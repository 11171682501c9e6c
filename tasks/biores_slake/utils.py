"""biores_slake: SLAKE (English questions) as an inference-resolution sweep.

Data: ``BoKelvin/SLAKE`` on the Hugging Face hub, or a local copy named by
``$BIORES_SLAKE_PATH`` (see README.md).

Schema. The hub repository (verified from its file listing) holds ``train.json``,
``validation.json``, ``test.json``, ``imgs.zip`` (212 MB), ``KG.zip`` and ``mask.txt``; the
metadata loads with the json builder, the images are *not* in the table. Each record has the
original SLAKE 1.0 fields ``img_id``, ``img_name`` (e.g. ``xmlab102/source.jpg``, relative to
the ``imgs/`` folder that ``imgs.zip`` unpacks to), ``question``, ``answer``, ``q_lang``
(``en`` / ``zh``), ``location``, ``modality``, ``answer_type`` (``OPEN`` / ``CLOSED``),
``base_type``, ``content_type``, ``triple`` and ``qid``. The field names and the ``imgs/``
layout are confirmed by several public loaders of this repository; the exact member names
inside ``imgs.zip`` could not be listed here, so images are looked up as ``imgs/<img_name>``,
``<img_name>`` or any member whose trailing path equals ``img_name``.

Split: ``test``, English only (``q_lang == "en"``). Questions are *closed* when
``answer_type`` is ``CLOSED`` (SLAKE's own split of closed vs open questions; unlike VQA-RAD
it includes non-yes/no choices such as "Which is bigger, liver or spleen?").

Metrics (scoring shared with ``biores_vqa_rad``): ``closed_accuracy`` (yes/no answers compare
the yes/no reading of the response, other closed answers an exact normalised match),
``open_accuracy`` (exact match after normalisation), ``accuracy`` (overall) and the secondary
``open_recall`` (share of answer tokens found in the response).

Images come from the same root as the metadata: ``$BIORES_SLAKE_PATH`` when set, else the hub
snapshot (``huggingface_hub.snapshot_download``, which reads the local cache when offline).
:class:`ImageArchive` (also used by ``biores_pmc_vqa``) reads them from a zip or a folder and
gives header sizes without decoding pixels.
"""

from __future__ import annotations

import os
import threading
import zipfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from biores_plugin.errors import BioresConfigError
from biores_plugin.lmms_tasks import chat_messages, sweep_getattr, sweep_image
from biores_plugin.tasks.biores_vqa_rad.utils import (  # noqa: F401  (yaml !function targets)
    CLOSED,
    add_question_type,
    aggregate_accuracy,
    aggregate_closed,
    aggregate_open,
    aggregate_open_recall,
    vqa_doc_to_text,
    vqa_results,
)

REPO_ID = "BoKelvin/SLAKE"
ENV = "BIORES_SLAKE_PATH"


class ImageArchive:
    """Image files a data set ships next to its metadata: zips and/or unpacked folders.

    ``name`` lookups try ``<folder>/<name>`` and ``<name>`` in each folder and zip, then any
    zip member whose trailing path components equal ``name``.
    """

    def __init__(self, root: str | Path, zips: Sequence[str], folders: Sequence[str]):
        self.root = Path(root)
        self.folders = [self.root / f for f in folders if (self.root / f).is_dir()]
        self.zip_paths = [self.root / z for z in zips if (self.root / z).is_file()]
        self.prefixes = [f"{f}/" for f in folders] + [""]
        self._zips: list[zipfile.ZipFile] | None = None
        self._pid = os.getpid()
        self._index: dict[str, tuple[int, str]] | None = None
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.folders or self.zip_paths)

    def describe(self) -> str:
        return ", ".join(str(p) for p in [*self.zip_paths, *self.folders]) or f"nothing under {self.root}"

    def _open_zips(self) -> list[zipfile.ZipFile]:
        if self._zips is None or self._pid != os.getpid():  # never share a file offset across fork
            self._zips = [zipfile.ZipFile(p) for p in self.zip_paths]
            self._pid = os.getpid()
        return self._zips

    def _member(self, name: str) -> tuple[int, str] | None:
        zips = self._open_zips()
        for i, zf in enumerate(zips):
            for prefix in self.prefixes:
                try:
                    zf.getinfo(prefix + name)
                    return i, prefix + name
                except KeyError:
                    continue
        if self._index is None:  # built once, on the first miss
            index: dict[str, tuple[int, str]] = {}
            for i, zf in enumerate(zips):
                for member in zf.namelist():
                    parts = member.split("/")
                    for k in range(len(parts)):
                        index.setdefault("/".join(parts[k:]), (i, member))
            self._index = index
        return self._index.get(name)

    def read(self, name: str) -> bytes:
        name = str(name).strip().lstrip("/")
        for path in [*(folder / name for folder in self.folders), self.root / name]:
            if path.is_file():
                return path.read_bytes()
        with self._lock:
            found = self._member(name)
            if found is not None:
                return self._open_zips()[found[0]].read(found[1])
        raise BioresConfigError(f"image {name!r} not found in {self.describe()}")

    def size(self, name: str) -> tuple[int, int]:
        from biores_plugin.image_io import image_size

        return image_size(self.read(name))

    def sizes(self, names: Sequence[str]) -> list[tuple[int, int]]:
        """Header sizes of many members; an image named by several rows is read once."""
        cache: dict[str, tuple[int, int]] = {}
        for name in names:
            if name not in cache:
                cache[name] = self.size(name)
        return [cache[name] for name in names]

    def open(self, name: str) -> Image.Image:
        from biores_plugin.image_io import load_image

        return load_image(self.read(name))


def data_root(env: str, repo_id: str, patterns: Sequence[str], what: str) -> Path:
    """The folder holding a data set's files: ``$env`` when set, else the hub snapshot."""
    local = os.environ.get(env, "").strip()
    if local:
        path = Path(local).expanduser()
        if not path.is_dir():
            raise BioresConfigError(f"{env}={local} is not a folder (expected a local copy of {repo_id} with {what})")
        return path.resolve()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=list(patterns)))
    except Exception as exc:  # noqa: BLE001  (offline without a cached snapshot, no network, ...)
        raise BioresConfigError(_missing(env, repo_id, patterns, what, f"{type(exc).__name__}: {exc}")) from None


def _missing(env: str, repo_id: str, patterns: Sequence[str], what: str, reason: str) -> str:
    files = " ".join(p for p in patterns if "*" not in p)
    reason = " ".join(reason.split())
    reason = reason if len(reason) <= 120 else reason[:117] + "..."
    return (
        f"{what} of {repo_id} not found: set {env} to a local copy (see the task's README.md) or fetch "
        f"them once with `hf download {repo_id} --repo-type dataset --include {files}` ({reason})"
    )


@lru_cache(maxsize=8)
def _archive(env_value: str, env: str, repo_id: str, zips: tuple, folders: tuple, what: str, hub_files: tuple) -> ImageArchive:
    root = data_root(env, repo_id, [*hub_files, *(f"{f}/*" for f in folders)], what)
    archive = ImageArchive(root, zips, folders)
    if not archive:
        looked = ", ".join([*zips, *(f + "/" for f in folders)])
        if env_value:
            raise BioresConfigError(f"{env}={env_value} holds no {what} (none of {looked}); add them (see the task's README.md)")
        raise BioresConfigError(_missing(env, repo_id, hub_files, what, f"none of {looked} in the hub snapshot {root}"))
    return archive


def image_archive(
    env: str, repo_id: str, zips: Sequence[str], folders: Sequence[str], what: str, hub_files: Sequence[str] | None = None
) -> ImageArchive:
    """The (cached) archive for the current value of ``$env``. Without ``$env`` the hub snapshot
    is used, fetching only ``hub_files`` (default: ``zips``) when online."""
    files = tuple(zips if hub_files is None else hub_files)
    return _archive(os.environ.get(env, "").strip(), env, repo_id, tuple(zips), tuple(folders), what, files)


# ----------------------------------------------------------------------------- SLAKE


def images() -> ImageArchive:
    return image_archive(ENV, REPO_ID, ["imgs.zip"], ["imgs"], "SLAKE images (imgs.zip or imgs/)")


def _prepare(dataset: Any) -> Any:
    langs = [str(x or "").strip().lower() for x in dataset["q_lang"]]
    keep = [i for i, lang in enumerate(langs) if lang == "en"]
    if len(keep) != len(dataset):
        dataset = dataset.select(keep)
    closed = [str(x or "").strip().upper() == CLOSED.upper() for x in dataset["answer_type"]]
    return add_question_type(dataset, closed)


def _sizes(dataset: Any) -> list[tuple[int, int]]:
    return images().sizes(dataset["img_name"])


# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
__getattr__ = sweep_getattr(prepare=_prepare, image_column=None, sizes_fn=_sizes)


def doc_to_visual(doc):
    return [sweep_image(images().open(doc["img_name"]), int(doc["biores_resolution"]))]


doc_to_text = vqa_doc_to_text


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return chat_messages(doc_to_visual(doc)[0], doc_to_text(doc, lmms_eval_specific_kwargs))


process_results = vqa_results
