"""Torch tensor input: ``[C, H, W]``, ``[H, W, C]`` or ``[H, W]`` to an ``H x W x C`` array.

torch is never imported here: a tensor can only exist when the caller imported torch, so
:func:`_is_tensor` looks it up in ``sys.modules``. The array then follows the numpy rules.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ._messages import _exc_text, _fail
from .options import _SURE_CHANNELS, MAX_GUESSED_CHANNELS


def _is_tensor(source: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(source, torch.Tensor)


def _tensor_hwc(name: str, tensor: Any) -> np.ndarray:
    """The tensor's data as an ``H x W x C`` numpy array (a view where torch allows one)."""
    import torch

    shape = tuple(int(s) for s in tensor.shape)
    if tensor.layout != torch.strided:
        raise _fail(name, f"sparse tensors are not images (layout {tensor.layout}); call .to_dense()")
    if tensor.is_complex():
        raise _fail(name, f"complex tensors are not images (dtype {tensor.dtype}); pass abs() or the real part")
    if tensor.device.type == "meta":
        raise _fail(name, "a tensor on the meta device has no pixel data")
    if tensor.ndim == 2:
        layout = "HW"
    elif tensor.ndim == 3 and shape[0] <= MAX_GUESSED_CHANNELS and not shape[2] <= _SURE_CHANNELS < shape[0]:
        layout = "CHW"  # torch's convention, unless only the last axis looks like RGB(A)
    elif tensor.ndim == 3 and shape[2] <= MAX_GUESSED_CHANNELS:
        layout = "HWC"
    else:
        raise _fail(
            name,
            f"tensor images must be [C, H, W], [H, W, C] (at most {MAX_GUESSED_CHANNELS} channels) "
            f"or [H, W], got shape {shape}" + (" (pass a batch as single images)" if tensor.ndim == 4 else ""),
        )
    data = tensor.detach()
    if data.dtype in (torch.float16, torch.bfloat16):
        data = data.float()
    try:
        arr = data.cpu().resolve_conj().resolve_neg().numpy()
    except Exception as exc:
        raise _fail(name, f"unsupported tensor dtype {tensor.dtype} ({_exc_text(exc)})") from exc
    if layout == "HW":
        return arr[:, :, None]
    return np.moveaxis(arr, 0, -1) if layout == "CHW" else arr
