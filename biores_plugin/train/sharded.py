"""Sharded training on CPU: accelerate's own FSDP2 path, switched on where accelerate 1.16 leaves it off.

``accelerate launch --config_file fsdp.yaml`` (or ``--fsdp`` flags) on GPUs gives transformers' Trainer an
``Accelerator`` whose state is ``DistributedType.FSDP``; on CPU, ``AcceleratorState`` keeps ``MULTI_CPU`` (its FSDP
branch lists accelerator devices only) and the run would train as plain DDP, unsharded. torch's FSDP2
(``fully_shard``) itself runs on CPU with gloo, so for biores-train's own Trainer (never anyone else's)
:func:`enable_cpu_fsdp` sets the state the GPU launch would have: ``distributed_type = FSDP`` and the FSDP2 plugin
built from the same config. From there the Trainer, accelerate's ``fsdp2_prepare_model`` and the full-state-dict
save run exactly as on GPUs. FSDP1 stays refused on CPU (one line).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..errors import BioresConfigError


def fsdp_requested(args: Any) -> bool:
    """``--fsdp ...`` flags or an ``accelerate launch`` FSDP config (``ACCELERATE_USE_FSDP``)."""
    return args.fsdp_plugin_args is not None or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def fsdp_plugin_for(args: Any) -> Any:
    from accelerate.utils import FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin(
        **(args.fsdp_plugin_args or {})
    )  # the launcher's FSDP_* environment fills the rest
    if int(plugin.fsdp_version) != 2:
        raise BioresConfigError(
            "FSDP on CPU runs FSDP2 only (torch's fully_shard with gloo): "
            f"set fsdp_version: 2 (got {plugin.fsdp_version})"
        )
    return plugin


def enable_cpu_fsdp(trainer: Any) -> bool:
    """Give ``trainer``'s Accelerator the FSDP2 state on a multi-process CPU run that asked for FSDP; returns
    whether it did (nothing changes on GPUs, single processes, or runs that did not ask)."""
    from accelerate.utils import DistributedType

    state = trainer.accelerator.state
    if (
        torch.cuda.is_available()
        or not fsdp_requested(trainer.args)
        or state.distributed_type != DistributedType.MULTI_CPU
    ):
        return False
    if state.num_processes < 2:
        return False
    from accelerate.state import PartialState

    state.fsdp_plugin = fsdp_plugin_for(trainer.args)
    state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP  # as AcceleratorState.__init__ does on GPUs
    trainer.is_fsdp_enabled = trainer._biores_cpu_fsdp = True
    return True


def check_cpu_fsdp(args: Any) -> None:
    """Before any work: FSDP on CPU needs several processes (a single one would train unsharded) and FSDP2."""
    if torch.cuda.is_available() or not fsdp_requested(args):
        return
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        raise BioresConfigError(
            "FSDP on CPU needs several processes (accelerate launch --num_processes N or torchrun); "
            "one process would train unsharded"
        )
    if args.fsdp_plugin_args is not None:
        version = str(args.fsdp_plugin_args.get("fsdp_version", 2))
    else:
        version = os.environ.get("FSDP_VERSION", "1")
    if version != "2":
        raise BioresConfigError(
            f"FSDP on CPU runs FSDP2 only (torch's fully_shard with gloo): set fsdp_version: 2 (got {version})"
        )


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole (unsharded) state dict, gathered on every rank (a collective: all ranks call it).

    accelerate's FSDP2 ``get_state_dict`` asks torch for a CPU-offloaded full state dict; on CPU that "offload"
    is no copy, so its tensors still point into the gathered buffers FSDP frees again (safetensors then fails on
    their storage). Each DTensor is gathered here with ``full_tensor()`` and cloned.
    """
    from torch.distributed.tensor import DTensor

    out = {}
    for key, value in model.state_dict().items():
        if isinstance(value, DTensor):
            value = value.full_tensor()
        out[key] = value.detach().clone()
    return out


def is_cpu_fsdp(trainer: Any) -> bool:
    return bool(getattr(trainer, "_biores_cpu_fsdp", False))


def local_shares(model: torch.nn.Module) -> list[dict[str, float]]:
    """Per rank: the share of all weight elements it holds (``share``, 1.0 unsharded) and the largest share it
    holds of any one weight with at least 8 rows (``max_weight_share``). A collective under torch.distributed."""
    from torch.distributed.tensor import DTensor

    held = total = 0
    largest = 0.0
    for param in model.parameters():
        local = param.to_local().numel() if isinstance(param, DTensor) else param.numel()
        total += param.numel()
        held += local
        if param.dim() and param.shape[0] >= 8:
            largest = max(largest, local / param.numel())
    mine = {"share": held / max(1, total), "max_weight_share": largest}
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [mine]
    shares: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(shares, mine)
    return shares


def close_process_group() -> bool:
    """End a successful multi-process run in order: every rank reaches a barrier, then destroys the process group
    (torch's documented shutdown). A gloo group left to the interpreter's exit can abort a rank that already
    finished ("terminate called without an active exception", pytorch#190489), failing a run whose work is saved.
    Only called after success: a rank that failed must not wait at a barrier its peers never reach. Returns whether
    there was a group to close."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return False
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    return True
