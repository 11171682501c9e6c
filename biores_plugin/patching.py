"""The one way biores patches other code: wrap an attribute, know it is wrapped, put it back.

Every monkey-patch in biores (the LLaVA hooks and shims, the lmms-eval plugin hooks, the
varlen vision patch) goes through :func:`wrap` or :func:`replace`, which record the exact
original object in one registry, keyed by owner and attribute and tagged with a group
(``"llava.hooks"``, ``"lmms_eval"``, ...). :func:`revert` puts a group's originals back.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import BioresConfigError

__all__ = ["Patch", "is_wrapped", "original", "patches", "replace", "revert", "wrap"]

_MARK = "__biores_patch__"
_MISSING = object()


@dataclass
class Patch:
    """One replaced attribute: ``owner.name`` was ``raw`` (or absent) and is now ``value``."""

    owner: Any
    name: str
    group: str
    raw: Any  # what ``vars(owner)[name]`` held (``_MISSING`` when the attribute was inherited)
    previous: Any  # what ``getattr(owner, name)`` gave before
    value: Any
    rebound: list[tuple[Any, str, Any]] = field(default_factory=list)  # other modules' references

    @property
    def label(self) -> str:
        owner = getattr(self.owner, "__qualname__", None) or getattr(self.owner, "__name__", repr(self.owner))
        return f"{owner}.{self.name}"


_LOCK = threading.RLock()
_REGISTRY: dict[tuple[int, str], Patch] = {}


def _current(owner: Any, name: str) -> Any:
    return vars(owner).get(name, _MISSING) if hasattr(owner, "__dict__") else getattr(owner, name, _MISSING)


def _install(owner: Any, name: str, value: Any, group: str, rebind: Callable[[str], bool] | None) -> Any:
    key = (id(owner), name)
    with _LOCK:
        existing = _REGISTRY.get(key)
        if existing is not None:
            if existing.group != group:
                raise BioresConfigError(f"{existing.label} is already patched by {existing.group!r}, not {group!r}")
            return existing.value
        if not hasattr(owner, name):
            raise BioresConfigError(f"cannot patch {getattr(owner, '__name__', owner)!r}: it has no attribute {name!r}")
        old = getattr(owner, name)
        patch = Patch(owner, name, group, _current(owner, name), old, value)
        setattr(owner, name, value)
        if rebind is not None:  # modules that imported the old object by name (``from m import f``)
            for module in list(sys.modules.values()):
                module_name = getattr(module, "__name__", "") or ""
                if module is not owner and rebind(module_name) and getattr(module, name, None) is old:
                    setattr(module, name, value)
                    patch.rebound.append((module, name, old))
        _REGISTRY[key] = patch
        return value


def wrap(
    owner: Any,
    name: str,
    make: Callable[[Any], Callable],
    *,
    group: str,
    rebind: Callable[[str], bool] | None = None,
) -> Callable:
    """Replace ``owner.name`` by ``make(original)`` and record the original.

    Idempotent: while ``owner.name`` is patched, a second call returns the installed wrapper.
    ``rebind(module_name)`` also replaces the same object in the modules it accepts.
    """
    with _LOCK:
        existing = _REGISTRY.get((id(owner), name))
        if existing is not None and existing.group == group:
            return existing.value
        if not hasattr(owner, name):
            raise BioresConfigError(f"cannot patch {getattr(owner, '__name__', owner)!r}: it has no attribute {name!r}")
        wrapper = make(getattr(owner, name))
        if hasattr(wrapper, "__dict__"):  # functions take the mark; a builtin cannot (the registry still records it)
            setattr(wrapper, _MARK, group)
        return _install(owner, name, wrapper, group, rebind)


def replace(owner: Any, name: str, value: Any, *, group: str) -> Any:
    """Set ``owner.name = value`` (an attribute that may not exist yet), recorded like :func:`wrap`."""
    with _LOCK:
        key = (id(owner), name)
        if key in _REGISTRY:
            return _install(owner, name, value, group, None)
        patch = Patch(owner, name, group, _current(owner, name), getattr(owner, name, None), value)
        setattr(owner, name, value)
        _REGISTRY[key] = patch
        return value


def is_wrapped(owner: Any, name: str, group: str | None = None) -> bool:
    """Whether ``owner.name`` is currently patched (by ``group`` when given)."""
    patch = _REGISTRY.get((id(owner), name))
    return patch is not None and (group is None or patch.group == group) and getattr(owner, name, None) is patch.value


def original(owner: Any, name: str) -> Any:
    """The object ``owner.name`` resolved to before biores patched it (the attribute itself if unpatched)."""
    patch = _REGISTRY.get((id(owner), name))
    return getattr(owner, name) if patch is None else patch.previous


def patches(group: str | None = None) -> list[Patch]:
    """The patches in place, oldest first (of ``group`` when given)."""
    return [p for p in _REGISTRY.values() if group is None or p.group == group]


def revert(group: str | None = None, *, names: Iterable[str] | None = None) -> list[str]:
    """Put the originals of ``group`` (every group when None) back; returns the labels reverted."""
    wanted = set(names) if names is not None else None
    done = []
    with _LOCK:
        for key, patch in reversed(list(_REGISTRY.items())):
            if group is not None and patch.group != group:
                continue
            if wanted is not None and patch.name not in wanted:
                continue
            for module, attr, old in patch.rebound:
                if getattr(module, attr, None) is patch.value:
                    setattr(module, attr, old)
            if patch.raw is _MISSING:
                if patch.name in vars(patch.owner):
                    delattr(patch.owner, patch.name)
            else:
                setattr(patch.owner, patch.name, patch.raw)
            del _REGISTRY[key]
            done.append(patch.label)
    return done
