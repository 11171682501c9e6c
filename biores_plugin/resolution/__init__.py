"""The resolution layer: policies, levels, the mixed-resolution draw, the flags and the resize.

Pure (no torch, no transformers): image sizes in, sizes, token counts and PIL images out.
"""

from .config import (
    BIORES_CONFIG_NAME,
    ResolutionConfig,
    add_resolution_arguments,
    is_native_like,
    pixel_range,
    resolution_fields,
)
from .levels import (
    DEFAULT_RESOLUTIONS,
    NATIVE,
    capped,
    effective_size,
    parse_levels,
    parse_resolution,
    resolution_label,
)
from .mixed import MixedResolution, draw_summary
from .policy import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    AnyResPolicy,
    DownsamplePolicy,
    FixedPolicy,
    NativePolicy,
    Policy,
    parse_policy,
    policy_from_dict,
    smart_resize,
)
from .resize import apply_policy, downsample, resize_exact

__all__ = [
    "AnyResPolicy",
    "BIORES_CONFIG_NAME",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MIN_PIXELS",
    "DEFAULT_RESOLUTIONS",
    "DownsamplePolicy",
    "FixedPolicy",
    "MixedResolution",
    "NATIVE",
    "NativePolicy",
    "Policy",
    "ResolutionConfig",
    "add_resolution_arguments",
    "apply_policy",
    "capped",
    "downsample",
    "draw_summary",
    "effective_size",
    "is_native_like",
    "parse_levels",
    "parse_policy",
    "parse_resolution",
    "pixel_range",
    "policy_from_dict",
    "resize_exact",
    "resolution_fields",
    "resolution_label",
    "smart_resize",
]
