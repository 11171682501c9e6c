"""Packed native-resolution vision encoding: packing helpers, varlen attention, encode_packed, merge_2x2, patch.

Tiny random CLIP / SigLIP towers in fp32 on CPU; every packed result is checked against the tower run image by
image with ``interpolate_pos_encoding=True``.
"""

from __future__ import annotations

import math
import sys

import pytest
import torch
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    CLIPVisionModelWithProjection,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from biores_plugin.errors import BioresConfigError  # noqa: E402
from biores_plugin.patches import varlen_vision  # noqa: E402
from biores_plugin.vision import (  # noqa: E402
    BACKENDS,
    PackedSeqInfo,
    available_backends,
    block_diagonal_mask,
    cu_seqlens_from_lengths,
    encode_packed,
    merge_2x2,
    pack,
    register,
    unpack,
    varlen_attention,
)
from biores_plugin.vision.packing import lengths_from_cu_seqlens, segment_ids  # noqa: E402

ATOL = 1e-5
CPU_BACKENDS = ("sdpa_blockdiag", "sdpa_segments")


# ----------------------------------------------------------------------------------------------- fixtures
def _tower(model_cls, config_cls, seed: int, image_size: int, patch_size: int, **kw):
    torch.manual_seed(seed)
    cfg = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch_size,
    )
    cfg.update(kw)
    return model_cls(config_cls(**cfg)).eval()


def _clip(**kw) -> CLIPVisionModel:
    return _tower(CLIPVisionModel, CLIPVisionConfig, 0, 28, 4, **kw)


def _siglip(**kw) -> SiglipVisionModel:
    return _tower(SiglipVisionModel, SiglipVisionConfig, 1, 56, 14, **kw)


def _images(patch: int, image_size: int) -> list[torch.Tensor]:
    """4 images: the tower's own square size, a non-square one, one larger than image_size, one whose sides are
    not multiples of the patch."""
    g = torch.Generator().manual_seed(2)
    p, s = patch, image_size
    sizes = [(s, s), (10 * p, 6 * p), (2 * s, 2 * s + 2 * p), (4 * p + 2, 7 * p + 1)]
    return [torch.randn(3, h, w, generator=g) for h, w in sizes]


TOWERS = {"clip": (_clip, 4, 28), "siglip": (_siglip, 14, 56)}


@pytest.fixture(scope="module", params=sorted(TOWERS))
def tower_case(request):
    build, patch, size = TOWERS[request.param]
    return request.param, build(), _images(patch, size)


@pytest.fixture(autouse=True)
def _never_leave_patched():
    yield
    varlen_vision.revert()


def _reference(model, img, feature_layer, select="patch"):
    out = model(pixel_values=img.unsqueeze(0), interpolate_pos_encoding=True, output_hidden_states=True)
    feats = (out.last_hidden_state if feature_layer is None else out.hidden_states[feature_layer])[0]
    if isinstance(model, CLIPVisionModel) and select == "patch":
        feats = feats[1:]
    return feats


# ----------------------------------------------------------------------------------------------- packing
def test_cu_seqlens_pack_unpack_roundtrip():
    g = torch.Generator().manual_seed(0)
    parts = [torch.randn(n, 3, 5, generator=g) for n in (4, 1, 9, 0, 2)]
    packed, cu, max_len = pack(parts)
    assert packed.shape == (16, 3, 5)
    assert cu.dtype == torch.int32 and cu.tolist() == [0, 4, 5, 14, 14, 16]
    assert max_len == 9
    assert cu_seqlens_from_lengths([4, 1, 9, 0, 2]).tolist() == cu.tolist()
    assert lengths_from_cu_seqlens(cu) == [4, 1, 9, 0, 2]
    back = unpack(packed, cu)
    assert len(back) == len(parts) and all(torch.equal(a, b) for a, b in zip(parts, back))
    assert segment_ids(cu).tolist() == [0] * 4 + [1] + [2] * 9 + [4] * 2
    with pytest.raises(BioresConfigError):
        pack([])
    with pytest.raises(BioresConfigError):
        pack([torch.zeros(2, 3), torch.zeros(2, 4)])
    with pytest.raises(BioresConfigError):
        unpack(packed[:-1], cu)
    with pytest.raises(BioresConfigError):
        cu_seqlens_from_lengths([3, -1])


def test_block_diagonal_mask():
    cu = cu_seqlens_from_lengths([2, 3])
    m = block_diagonal_mask(cu)
    expected = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 1, 1, 1]])
    assert m.dtype == torch.bool and torch.equal(m, expected.bool())
    f = block_diagonal_mask(cu, torch.float32)
    assert torch.equal(f == 0, expected.bool()) and f.min() == torch.finfo(torch.float32).min


# ----------------------------------------------------------------------------------------------- attention
def _naive_attention(q, k, v, lengths, scale, causal=False):
    outs, start = [], 0
    for n in lengths:
        qs, ks, vs = (t[start : start + n].transpose(0, 1).double() for t in (q, k, v))  # [H, L, D]
        scores = qs @ ks.transpose(-1, -2) * scale
        if causal:
            scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        outs.append((torch.softmax(scores, dim=-1) @ vs).transpose(0, 1))
        start += n
    return torch.cat(outs).float()


@pytest.mark.parametrize("backend", [*CPU_BACKENDS, "auto"])
@pytest.mark.parametrize("causal", [False, True])
# all different; runs of equal lengths (batched into one SDPA call by sdpa_segments) between others, and an empty one
@pytest.mark.parametrize("lengths", [[5, 1, 17, 8], [5, 5, 5, 1, 17, 17, 0, 8, 5, 5]])
def test_varlen_attention_equals_per_segment_naive(backend, causal, lengths):
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(sum(lengths), 4, 8, generator=g) for _ in range(3))
    cu = cu_seqlens_from_lengths(lengths)
    scale = 0.3
    out = varlen_attention(q, k, v, cu, max(lengths), scale, backend=backend, causal=causal)
    assert out.shape == q.shape
    torch.testing.assert_close(out, _naive_attention(q, k, v, lengths, scale, causal), atol=ATOL, rtol=0)


def test_varlen_attention_gradients_agree_between_backends():
    g = torch.Generator().manual_seed(4)
    lengths = [6, 3, 11]
    base = [torch.randn(sum(lengths), 2, 8, generator=g) for _ in range(3)]
    w = torch.randn(sum(lengths), 2, 8, generator=g)
    cu = cu_seqlens_from_lengths(lengths)
    grads = {}
    for backend in CPU_BACKENDS:
        q, k, v = (t.clone().requires_grad_(True) for t in base)
        (varlen_attention(q, k, v, cu, max(lengths), None, backend=backend) * w).sum().backward()
        grads[backend] = [t.grad for t in (q, k, v)]
    for a, b in zip(*grads.values()):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


def test_backend_errors_and_availability():
    q = torch.randn(6, 2, 4)
    cu = cu_seqlens_from_lengths([2, 4])
    with pytest.raises(BioresConfigError, match="unknown attention backend 'nope'"):
        varlen_attention(q, q, q, cu, 4, None, backend="nope")
    cpu = available_backends("cpu")
    assert cpu == ["sdpa_blockdiag", "sdpa_segments"]
    assert set(available_backends()) <= set(BACKENDS)
    for forced in ("flash_attn", "torch_varlen"):
        with pytest.raises(BioresConfigError, match=f"attention backend '{forced}' is unavailable"):
            varlen_attention(q, q, q, cu, 4, None, backend=forced)
    with pytest.raises(BioresConfigError, match="flash_attn package is not installed|needs CUDA"):
        varlen_attention(q.half(), q.half(), q.half(), cu, 4, None, backend="flash_attn")
    with pytest.raises(BioresConfigError):
        varlen_attention(q, q[:5], q, cu, 4, None)  # total mismatch
    with pytest.raises(BioresConfigError):
        PackedSeqInfo(cu, backend="nope")


# ----------------------------------------------------------------------------------------------- encoder
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("feature_layer", [-1, -2, None])
def test_encode_packed_equals_image_by_image(tower_case, backend, feature_layer):
    _, model, images = tower_case
    with torch.no_grad():
        out = encode_packed(model, images, feature_layer=feature_layer, backend=backend)
        refs = [_reference(model, img, feature_layer) for img in images]
    p = model.config.patch_size
    assert out.grid_hw == [(img.shape[1] // p, img.shape[2] // p) for img in images]
    assert out.features.shape == (sum(r.shape[0] for r in refs), model.config.hidden_size)
    assert out.cu_seqlens.tolist() == cu_seqlens_from_lengths([r.shape[0] for r in refs]).tolist()
    assert not out.has_cls
    for got, ref in zip(out.per_image, refs):
        torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", sorted(TOWERS))
def test_images_of_one_size_in_a_row_get_what_each_gets_alone(name):
    """Consecutive images of one size are embedded and attended as one batch: features and gradients still equal
    the tower run image by image, in the caller's order, around images of other sizes."""
    build, patch, size = TOWERS[name]
    model, (a, b, c, _) = build(), _images(patch, size)
    images = [a, a.flip(-1), b, a.flip(-2), a, a.flip(-1), c, c.flip(-1)]
    params = [p for p in model.parameters() if p.requires_grad]
    w = torch.randn(
        sum(_reference(model, x, -1).shape[0] for x in images),
        model.config.hidden_size,
        generator=torch.Generator().manual_seed(6),
    )
    model.zero_grad(set_to_none=True)
    out = encode_packed(model, images, feature_layer=-1, backend="sdpa_segments")
    (out.features * w).sum().backward()
    packed = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]
    model.zero_grad(set_to_none=True)
    refs = [_reference(model, x, -1) for x in images]
    (torch.cat(refs) * w).sum().backward()
    for got, ref in zip(out.per_image, refs):
        torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)
    assert any(bool(g.abs().sum() > 0) for g in packed)
    for got, p in zip(packed, params):
        torch.testing.assert_close(got, torch.zeros_like(p) if p.grad is None else p.grad, atol=1e-4, rtol=1e-5)


def test_equal_runs():
    from biores_plugin.vision.packing import equal_runs

    assert equal_runs([3, 3, 5, 3]) == [(0, 2), (2, 1), (3, 1)]
    assert equal_runs([(2, 4), (2, 4), (2, 4)]) == [(0, 3)] and equal_runs([]) == []


def test_encode_packed_cls_patch_and_wrappers():
    model = _clip()
    images = _images(4, 28)
    with torch.no_grad():
        out = encode_packed(model, images, feature_layer=-2, select="cls_patch")
        refs = [_reference(model, img, -2, select="cls_patch") for img in images]
        assert out.has_cls and out.lengths == [h * w + 1 for h, w in out.grid_hw]
        for got, ref in zip(out.per_image, refs):
            torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)
        # a model that holds the tower as .vision_model (CLIPVisionModelWithProjection / CLIPModel layout)
        torch.manual_seed(0)
        wrapped = CLIPVisionModelWithProjection(model.config).eval()
        wrapped.vision_model.load_state_dict(model.state_dict())
        out2 = encode_packed(wrapped, images, feature_layer=-2, select="cls_patch")
        torch.testing.assert_close(out2.features, out.features, atol=0, rtol=0)
        # [B, C, H, W] items in the list are split into their images
        out3 = encode_packed(model, [images[0][None], torch.stack([images[1], images[1]])], feature_layer=-2)
        assert out3.grid_hw == [out.grid_hw[0], out.grid_hw[1], out.grid_hw[1]]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradients_equal_image_by_image(tower_case, backend):
    _, model, images = tower_case
    params = [p for p in model.parameters() if p.requires_grad]

    def grads(run):
        model.zero_grad(set_to_none=True)
        pix = [img.clone().requires_grad_(True) for img in images]
        run(pix).backward()
        return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params], [x.grad for x in pix]

    with torch.no_grad():
        probe = encode_packed(model, images, feature_layer=-2)
    # random weights, normalised by the token count (a weighted mean) so parameter gradients are O(1): with a plain
    # sum they reach ~500 and fp32 summation order alone moves them by ~1e-4 (relative 2e-7)
    w = torch.randn(probe.features.shape, generator=torch.Generator().manual_seed(5)) / probe.features.shape[0]
    ws = torch.split(w, probe.lengths)
    p_packed, x_packed = grads(
        lambda pix: (encode_packed(model, pix, feature_layer=-2, backend=backend).features * w).sum()
    )
    p_ref, x_ref = grads(lambda pix: sum((_reference(model, x, -2) * wi).sum() for x, wi in zip(pix, ws)))
    assert any(g.abs().sum() > 0 for g in p_packed)
    for a, b in zip(p_packed, p_ref):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    for a, b in zip(x_packed, x_ref):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


@pytest.mark.parametrize("use_reentrant", [False, True])
@pytest.mark.parametrize("name", sorted(TOWERS))
def test_gradient_checkpointing_keeps_blocks(name, use_reentrant):
    """Checkpointed layers are replayed in backward, after encode_packed returned: the blocks must survive."""
    build, patch, size = TOWERS[name]
    model, images = build(), _images(patch, size)
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": use_reentrant})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
    assert all(layer.gradient_checkpointing for layer in model.encoder.layers)
    model.train()
    params = [p for p in model.parameters()]
    pix = [img.clone().requires_grad_(True) for img in images]
    feats = encode_packed(model, pix, feature_layer=-1).features
    (feats.square().sum() / feats.shape[0]).backward()
    packed = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    (getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable)()
    model.zero_grad(set_to_none=True)
    n = sum(_reference(model, x, -1).shape[0] for x in images)
    (sum(_reference(model, x, -1).square().sum() for x in images) / n).backward()
    for a, p in zip(packed, params):
        torch.testing.assert_close(a, p.grad if p.grad is not None else torch.zeros_like(p), atol=ATOL, rtol=0)
    assert model.config._attn_implementation == "sdpa"  # the per-call switch did not leak


def test_encode_packed_errors():
    model = _clip()
    img = torch.randn(3, 28, 28)
    with pytest.raises(BioresConfigError, match="unknown attention backend"):
        encode_packed(model, [img], backend="bogus")
    for forced in ("flash_attn", "torch_varlen"):
        with pytest.raises(BioresConfigError, match="unavailable"):
            encode_packed(model, [img], backend=forced)
    with pytest.raises(BioresConfigError, match="channels"):
        encode_packed(model, [torch.randn(1, 28, 28)])
    with pytest.raises(BioresConfigError, match="smaller than one"):
        encode_packed(model, [torch.randn(3, 2, 28)])
    with pytest.raises(BioresConfigError, match="feature_layer"):
        encode_packed(model, [img], feature_layer=3)
    with pytest.raises(BioresConfigError, match="select"):
        encode_packed(model, [img], select="cls")
    with pytest.raises(BioresConfigError, match="not a CLIP/SigLIP vision tower"):
        encode_packed(torch.nn.Linear(2, 2), [img])
    with pytest.raises(BioresConfigError, match="at least one image"):
        encode_packed(model, [])


# ----------------------------------------------------------------------------------------------- merge
@pytest.mark.parametrize("mode", ["concat", "mean"])
def test_merge_2x2(mode):
    grids = [(2, 4), (4, 2)]
    d = 3
    feats = torch.arange(16 * d, dtype=torch.float32).reshape(16, d)
    merged, new = merge_2x2(feats, grids, mode=mode)
    assert new == [(1, 2), (2, 1)]
    assert merged.shape == (4, 4 * d if mode == "concat" else d)
    img0 = feats[:8].reshape(2, 4, d)
    block = torch.stack([img0[0, 2], img0[0, 3], img0[1, 2], img0[1, 3]])  # 2nd block of image 0: TL, TR, BL, BR
    expect = block.reshape(-1) if mode == "concat" else block.mean(0)
    torch.testing.assert_close(merged[1], expect)
    img1 = feats[8:].reshape(4, 2, d)
    block = torch.stack([img1[2, 0], img1[2, 1], img1[3, 0], img1[3, 1]])  # 2nd block of image 1
    torch.testing.assert_close(merged[3], block.reshape(-1) if mode == "concat" else block.mean(0))


def test_merge_2x2_on_encoder_output_and_errors():
    model = _siglip()
    images = [torch.randn(3, 56, 56), torch.randn(3, 28, 84)]
    with torch.no_grad():
        out = encode_packed(model, images)
    merged, grids = merge_2x2(out)
    assert merged.shape == (out.features.shape[0] // 4, 4 * model.config.hidden_size)
    assert grids == [(2, 2), (1, 3)]
    with pytest.raises(BioresConfigError, match="even patch grids"):
        merge_2x2(torch.zeros(6, 2), [(2, 3)])
    with pytest.raises(BioresConfigError, match="mode"):
        merge_2x2(torch.zeros(4, 2), [(2, 2)], mode="max")
    with pytest.raises(BioresConfigError, match="class tokens"):
        merge_2x2(torch.zeros(5, 2), [(2, 2)])
    with torch.no_grad():
        cls_out = encode_packed(_clip(), [torch.randn(3, 28, 28)], select="cls_patch")
    with pytest.raises(BioresConfigError, match="patch tokens only"):
        merge_2x2(cls_out)


# ----------------------------------------------------------------------------------------------- transformers
def test_stock_encoder_with_biores_varlen_attn_implementation(tower_case):
    """cu_seq_lens_q / max_length_q given to the stock encoder reach the "biores_varlen" attention function."""
    name, model, images = tower_case
    register()  # nothing registers "biores_varlen" at import
    model.set_attn_implementation("biores_varlen")
    try:
        with torch.no_grad():
            embeds = [model.embeddings(x[None], interpolate_pos_encoding=True)[0] for x in images]
            packed, cu, max_len = pack(embeds)
            hidden = packed[None]
            if name == "clip":
                hidden = model.pre_layrnorm(hidden)
            kwargs = dict(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=max_len, max_length_k=max_len)
            if name == "siglip":  # SiglipAttention.forward drops **kwargs in transformers 5.x: the patch fixes it
                varlen_vision.apply()
            last = model.encoder(inputs_embeds=hidden, **kwargs).last_hidden_state[0]
            refs = [_reference(model, x, -1, select="cls_patch") for x in images]  # unpacked: same as sdpa
        for got, ref in zip(unpack(last, cu), refs):
            torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)
    finally:
        model.set_attn_implementation("sdpa")


# ----------------------------------------------------------------------------------------------- patch
def _patch_targets():
    from transformers.models.clip.modeling_clip import CLIPVisionModel as C
    from transformers.models.siglip.modeling_siglip import SiglipAttention as A
    from transformers.models.siglip.modeling_siglip import SiglipVisionModel as S

    return [(C, "forward"), (S, "forward"), (A, "forward")]


def test_patch_apply_revert_idempotent_and_restores_originals():
    originals = {(c, n): c.__dict__[n] for c, n in _patch_targets()}
    assert not varlen_vision.is_applied()
    varlen_vision.apply()
    once = {(c, n): c.__dict__[n] for c, n in _patch_targets()}
    varlen_vision.apply()
    assert varlen_vision.is_applied()
    for key, fn in once.items():
        assert key[0].__dict__[key[1]] is fn and fn is not originals[key]
        assert getattr(fn, "__biores_patch__", None) == "varlen_vision"
    varlen_vision.revert()
    varlen_vision.revert()
    assert not varlen_vision.is_applied()
    for key, fn in originals.items():
        assert key[0].__dict__[key[1]] is fn
    with varlen_vision.patched():
        assert varlen_vision.is_applied()
        with varlen_vision.patched():
            pass
        assert varlen_vision.is_applied()
    assert not varlen_vision.is_applied()
    for key, fn in originals.items():
        assert key[0].__dict__[key[1]] is fn


@pytest.mark.parametrize("version", ["4.46.3", "6.0.0"])
def test_patch_refuses_unsupported_transformers(monkeypatch, version):
    # the live module object (transformers' lazy module may have been swapped in sys.modules since import)
    monkeypatch.setattr(sys.modules["transformers"], "__version__", version)
    with pytest.raises(BioresConfigError, match=f"supports transformers 5.x only, found {version}") as err:
        varlen_vision.apply()
    assert "\n" not in str(err.value)
    assert not varlen_vision.is_applied()


def test_patched_forward_accepts_image_lists(tower_case):
    _, model, images = tower_case
    with torch.no_grad():
        tensor_before = model(pixel_values=images[0][None]).last_hidden_state
        with varlen_vision.patched():
            out = model(pixel_values=images, output_hidden_states=True)
            tensor_after = model(pixel_values=images[0][None]).last_hidden_state
            tup = model(pixel_values=images, return_dict=False)
        refs = [model(pixel_values=x[None], interpolate_pos_encoding=True, output_hidden_states=True) for x in images]
    assert torch.equal(tensor_before, tensor_after)  # tensor inputs untouched
    n_tokens = sum(r.last_hidden_state.shape[1] for r in refs)
    assert out.last_hidden_state.shape == (1, n_tokens, model.config.hidden_size)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    assert out.cu_seqlens.tolist() == cu_seqlens_from_lengths([r.last_hidden_state.shape[1] for r in refs]).tolist()
    for i, ref in enumerate(refs):
        s, e = out.cu_seqlens[i].item(), out.cu_seqlens[i + 1].item()
        torch.testing.assert_close(out.last_hidden_state[0, s:e], ref.last_hidden_state[0], atol=ATOL, rtol=0)
        for got, exp in zip(out.hidden_states, ref.hidden_states):
            torch.testing.assert_close(got[0, s:e], exp[0], atol=ATOL, rtol=0)
        if ref.pooler_output is not None:
            torch.testing.assert_close(out.pooler_output[i], ref.pooler_output[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(tup[0], out.last_hidden_state, atol=0, rtol=0)


def test_patched_projection_model_takes_lists():
    base = _clip()
    torch.manual_seed(0)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**{**base.config.to_dict(), "projection_dim": 8})).eval()
    images = _images(4, 28)[:3]
    with torch.no_grad(), varlen_vision.patched():
        embeds = model(pixel_values=images).image_embeds
        refs = [model(pixel_values=x[None], interpolate_pos_encoding=True).image_embeds[0] for x in images]
    assert embeds.shape == (3, 8)
    for got, ref in zip(embeds, refs):
        torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)
    assert math.isfinite(embeds.sum().item())
