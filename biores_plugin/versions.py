"""The upstream versions biores is tested with (pyproject.toml pins the same ranges), and one clear
line where code that relies on an upstream's internals meets a version outside them."""

from __future__ import annotations

from .errors import BioresConfigError

#: package -> (lowest tested, first untested); keep in step with pyproject.toml's dependencies
TESTED = {"transformers": ("5.24", "6"), "lmms-eval": ("0.7.3", "0.8")}


def check_version(package: str, feature: str) -> str:
    """The installed version of ``package``; a one-line error naming ``feature`` when it is outside
    the tested range (``feature`` relies on that package's internals)."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    low, high = TESTED[package]
    wanted = f"{package}>={low},<{high}"
    try:
        found = version(package)
    except PackageNotFoundError:
        raise BioresConfigError(f"{feature} needs {wanted}, which is not installed") from None
    if not Version(low) <= Version(found) < Version(high):
        raise BioresConfigError(
            f"{feature} relies on {package} internals tested with {wanted}; found {found} (pip install '{wanted}')"
        )
    return found
