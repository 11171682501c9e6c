"""Typed errors. Every user-facing failure in biores raises one of these with a one-line message."""


class BioresError(Exception):
    """Base class of every error biores raises on purpose."""


class BioresImageError(BioresError, ValueError):
    """An image could not be read or is unusable (corrupt, truncated, empty, too large, ...)."""


class BioresConfigError(BioresError, ValueError):
    """A flag, policy string or configuration value is unknown or inconsistent."""


class BioresBudgetError(BioresConfigError):
    """A resolution or visual-token budget cannot be met for the given image."""
