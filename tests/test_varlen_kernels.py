"""The CUDA varlen kernels' wiring, checked on CPU: the exact call ``varlen_attention`` makes, bound to
torch's ``varlen_attn`` and flash-attn 2's ``flash_attn_varlen_func`` signatures."""

from __future__ import annotations

import pytest
import torch

from biores_plugin.vision import cu_seqlens_from_lengths, varlen_attention


def _fake_kernel_setup(monkeypatch, name, fake):
    import biores_plugin.vision.kernels as attn

    real_reason = attn.backend_unavailable_reason
    monkeypatch.setattr(
        attn, "backend_unavailable_reason", lambda b, *a, **k: None if b == name else real_reason(b, *a, **k)
    )
    getter = "_flash_attn_varlen_func" if name == "flash_attn" else "_torch_varlen_attn"
    monkeypatch.setattr(attn, getter, lambda: fake)


def _flash_attn_reference_signature():
    """flash-attn's ``flash_attn_varlen_func`` signature: the installed one, else flash-attn 2.7's
    (``flash_attn/flash_attn_interface.py``, copied here as documentation of the contract)."""
    import inspect

    try:
        from flash_attn import flash_attn_varlen_func  # type: ignore[import-not-found]

        return inspect.signature(flash_attn_varlen_func)
    except ImportError:  # no CUDA build here: the documented reference

        def flash_attn_varlen_func(
            q,
            k,
            v,
            cu_seqlens_q,
            cu_seqlens_k,
            max_seqlen_q,
            max_seqlen_k,
            dropout_p=0.0,
            softmax_scale=None,
            causal=False,
            window_size=(-1, -1),
            softcap=0.0,
            alibi_slopes=None,
            deterministic=False,
            return_attn_probs=False,
            block_table=None,
        ):
            raise AssertionError("reference signature only")

        return inspect.signature(flash_attn_varlen_func)


def _recording_kernel(sig, seen):
    """A stand-in with the kernel's signature: binds each call (TypeError if it does not fit) and
    returns a marker tensor, so the test checks the call and the pass-through, not numerics it cannot see."""

    def kernel(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        seen.update(bound.arguments)
        seen["marker"] = torch.full_like(args[0], 7.0)
        return seen["marker"]

    return kernel


@pytest.mark.parametrize("causal", [False, True])
def test_torch_varlen_call_binds_to_the_installed_signature(monkeypatch, causal):
    """No CUDA here: the exact call varlen_attention makes, bound to torch's real varlen_attn signature."""
    import inspect

    from torch.nn.attention.varlen import varlen_attn

    import biores_plugin.vision.kernels as attn

    sig, seen = inspect.signature(varlen_attn), {}
    _fake_kernel_setup(monkeypatch, "torch_varlen", _recording_kernel(sig, seen))
    monkeypatch.setattr(attn, "_torch_varlen_params", lambda: frozenset(sig.parameters))
    q, k, v = (torch.randn(16, 2, 8) for _ in range(3))
    cu = cu_seqlens_from_lengths([3, 9, 4])
    out = varlen_attention(q, k, v, cu, 9, 0.25, backend="torch_varlen", causal=causal)
    assert out is seen["marker"]  # the kernel's output, untouched
    assert seen["query"] is q and seen["key"] is k and seen["value"] is v
    for key in ("cu_seq_q", "cu_seq_k"):
        assert seen[key].dtype == torch.int32 and seen[key].tolist() == [0, 3, 12, 16]
    assert seen["max_q"] == seen["max_k"] == 9 and seen["scale"] == 0.25
    causal_flag = seen.get("is_causal", False) or tuple(seen["window_size"]) == (-1, 0)
    assert causal_flag == causal


@pytest.mark.parametrize("causal", [False, True])
def test_flash_attn_call_binds_to_the_flash_attn_2_varlen_signature(monkeypatch, causal):
    seen: dict = {}
    _fake_kernel_setup(monkeypatch, "flash_attn", _recording_kernel(_flash_attn_reference_signature(), seen))
    q = torch.randn(10, 2, 8)
    cu = cu_seqlens_from_lengths([4, 6])
    out = varlen_attention(q, q, q, cu, 6, 0.5, backend="flash_attn", causal=causal)
    assert out is seen["marker"]
    assert seen["cu_seqlens_q"].dtype == torch.int32 and seen["cu_seqlens_k"].tolist() == [0, 4, 10]
    assert seen["max_seqlen_q"] == seen["max_seqlen_k"] == 6 and seen["softmax_scale"] == 0.5
    assert seen["dropout_p"] == 0.0 and seen["causal"] is causal and tuple(seen["window_size"]) == (-1, -1)
