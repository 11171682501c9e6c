"""Where biores patches the llava package: hook points that may be missing, named and removable.

The hooks (group ``"llava.hooks"``) and the shims (``"llava.shims"``) both patch through
:mod:`biores_plugin.patching`; this adds what they share: a point the installed llava flavour
lacks is skipped, functions llava modules imported by name are rebound there too, and every
patched point is remembered under its hook or shim name (what ``installed()`` reports).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from biores_plugin import patching

__all__ = [
    "HOOK_GROUP",
    "SHIM_GROUP",
    "import_or_none",
    "in_llava",
    "installed",
    "replace_point",
    "revert",
    "wrap_point",
]

HOOK_GROUP = "llava.hooks"
SHIM_GROUP = "llava.shims"
_POINTS: dict[str, dict[str, list[tuple[Any, str]]]] = {}  # group -> label -> [(owner, attribute)]


def in_llava(module_name: str) -> bool:
    """The modules whose by-name imports a patch also rebinds (``from llava.mm_utils import f``)."""
    return module_name == "llava" or module_name.startswith("llava.")


def import_or_none(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            return None  # that module does not exist in this llava flavour
        error: Exception = exc  # it exists, a module it imports does not
    except Exception as exc:  # noqa: BLE001 - it exists but fails to import: its hook points are skipped, said loudly
        error = exc
    import logging

    logging.getLogger("biores.llava").warning(
        "biores: %s fails to import (%s: %s); its hook points are skipped", module_name, type(error).__name__, error
    )
    return None


def _remember(group: str, label: str, owner: Any, attr: str) -> None:
    points = _POINTS.setdefault(group, {}).setdefault(label, [])
    if not any(o is owner and a == attr for o, a in points):
        points.append((owner, attr))


def wrap_point(
    owner: Any, attr: str, make: Callable[[Any], Any], *, group: str, label: str, rebind: bool = False
) -> bool:
    """``patching.wrap`` when ``owner.attr`` exists (False when it does not: the point is skipped)."""
    if owner is None or getattr(owner, attr, None) is None:
        return False
    patching.wrap(owner, attr, make, group=group, rebind=in_llava if rebind else None)
    _remember(group, label, owner, attr)
    return True


def replace_point(owner: Any, attr: str, value: Any, *, group: str, label: str) -> None:
    """``patching.replace``: publish ``owner.attr`` (which may not exist yet), removable like a wrap."""
    patching.replace(owner, attr, value, group=group)
    _remember(group, label, owner, attr)


def installed(group: str) -> list[str]:
    """The names of ``group`` with at least one point patched now, in the order they were installed."""
    return [
        label
        for label, points in _POINTS.get(group, {}).items()
        if any(patching.is_wrapped(owner, attr, group) for owner, attr in points)
    ]


def revert(group: str) -> list[str]:
    """Put llava's own objects back for every point of ``group``; returns the attributes reverted."""
    done = patching.revert(group)
    _POINTS.pop(group, None)
    return done
