"""The original LLaVA package (llava-torch) for the tests: required, never skipped, with biores' hooks applied."""

from __future__ import annotations

import pytest

LLAVA_INSTALL = "pip install --no-deps llava-torch==1.2.2.post1"


def require_llava() -> None:
    """Fail (not skip: CI installs llava-torch) with the install command when llava does not import."""
    try:
        import llava  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure is reported, with its type, in one line
        pytest.fail(
            f"the original LLaVA package is not installed ({type(exc).__name__}: {exc}); "
            f"install it with: {LLAVA_INSTALL}",
            pytrace=False,
        )


def apply_llava() -> dict:
    """biores' hooks and shims on llava (each module's ``llava_pkg`` fixture); applying twice is a no-op."""
    require_llava()
    from biores_plugin.original_llava import apply

    first = apply()
    assert apply() == first  # idempotent
    return first
