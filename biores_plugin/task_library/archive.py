"""Image files a data set ships beside its metadata (zips, folders, a hub snapshot).

``ImageArchive`` reads members by name and gives header sizes without decoding pixels;
``image_archive`` finds the root: ``$BIORES_<NAME>_PATH`` when set, else the hub snapshot.
"""

from __future__ import annotations

import os
import threading
import zipfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from PIL import Image

from ..errors import BioresConfigError

__all__ = ["ImageArchive", "UnsafePathError", "data_root", "image_archive", "inside_root"]


class UnsafePathError(BioresConfigError):
    """A path read from a data file would leave its data root (``..``, absolute, a symlink out)."""


def _allowed_roots(root: Path) -> list[Path]:
    """``root`` itself, and for a hub snapshot (``.../snapshots/<rev>``) its repository cache,
    whose ``blobs/`` the snapshot's symlinks point into."""
    roots = [root.resolve()]
    if root.parent.name == "snapshots":
        roots.append(root.parent.parent.resolve())
    return roots


def check_member_name(name: str, root: Path | str) -> str:
    """``name`` (from a data file) as a relative path, or a one-line :class:`UnsafePathError`."""
    text = str(name).strip().replace("\\", "/")
    parts = text.split("/")
    if not text or text.startswith("/") or (len(text) > 1 and text[1] == ":") or ".." in parts:
        raise UnsafePathError(f"image path {name!r} from the data file leaves the data root {root} (absolute or '..')")
    return "/".join(p for p in parts if p not in ("", "."))


def inside_root(root: Path | str, name: str) -> Path:
    """``root / name`` for a ``name`` read from a data file; symlinks leaving ``root`` are refused."""
    root = Path(root)
    path = root / check_member_name(name, root)
    resolved = path.resolve()
    if not any(resolved == r or r in resolved.parents for r in _allowed_roots(root)):
        raise UnsafePathError(
            f"image path {name!r} resolves to {resolved}, outside the data root {root} (a symlink leaves it)"
        )
    return path


class ImageArchive:
    """Image files a data set ships next to its metadata: zips and/or unpacked folders.

    ``name`` lookups try ``<folder>/<name>`` and ``<name>`` in each folder and zip, then any
    zip member whose trailing path components equal ``name``.
    """

    def __init__(self, root: str | Path, zips: Sequence[str], folders: Sequence[str], *, bare_first: bool = False):
        self.root = Path(root)
        self.folders = [self.root / f for f in folders if (self.root / f).is_dir()]
        self.zip_paths = [self.root / z for z in zips if (self.root / z).is_file()]
        # bare_first: ``<name>`` before ``<folder>/<name>`` (the order a task's own reader uses)
        self.prefixes = [""] + [f"{f}/" for f in folders] if bare_first else [f"{f}/" for f in folders] + [""]
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
        """The bytes of member ``name``; a name leaving the data root is a one-line error."""
        name = check_member_name(name, self.root)
        for base in [*self.folders, self.root]:
            path = base / name
            if path.is_file():
                return inside_root(self.root, str(path.relative_to(self.root))).read_bytes()
        with self._lock:
            found = self._member(name)
            if found is not None:
                return self._open_zips()[found[0]].read(found[1])
        raise BioresConfigError(f"image {name!r} not found in {self.describe()}")

    def size(self, name: str) -> tuple[int, int]:
        from ..image_io import image_size

        return image_size(self.read(name))

    def sizes(self, names: Sequence[str]) -> list[tuple[int, int]]:
        """Header sizes of many members; an image named by several rows is read once."""
        cache: dict[str, tuple[int, int]] = {}
        for name in names:
            if name not in cache:
                cache[name] = self.size(name)
        return [cache[name] for name in names]

    def open(self, name: str) -> Image.Image:
        from ..image_io import load_image

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
def _archive(
    env_value: str,
    env: str,
    repo_id: str,
    zips: tuple,
    folders: tuple,
    what: str,
    hub_files: tuple,
    bare_first: bool = False,
) -> ImageArchive:
    root = data_root(env, repo_id, [*hub_files, *(f"{f}/*" for f in folders)], what)
    archive = ImageArchive(root, zips, folders, bare_first=bare_first)
    if not archive:
        looked = ", ".join([*zips, *(f + "/" for f in folders)])
        if env_value:
            raise BioresConfigError(
                f"{env}={env_value} holds no {what} (none of {looked}); add them (see the task's README.md)"
            )
        raise BioresConfigError(_missing(env, repo_id, hub_files, what, f"none of {looked} in the hub snapshot {root}"))
    return archive


def image_archive(
    env: str,
    repo_id: str,
    zips: Sequence[str],
    folders: Sequence[str],
    what: str,
    hub_files: Sequence[str] | None = None,
    *,
    bare_first: bool = False,
) -> ImageArchive:
    """The (cached) archive for the current value of ``$env``. Without ``$env`` the hub snapshot
    is used, fetching only ``hub_files`` (default: ``zips``) when online."""
    files = tuple(zips if hub_files is None else hub_files)
    return _archive(os.environ.get(env, "").strip(), env, repo_id, tuple(zips), tuple(folders), what, files, bare_first)
