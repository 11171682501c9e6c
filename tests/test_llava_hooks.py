"""biores' hooks and shims on the original LLaVA package: tuple-style size access, hook points that are missing,
and a revert that puts back the exact originals."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from llava_pkg_fixture import apply_llava
from PIL import Image


@pytest.fixture(scope="module")
def llava_pkg():
    return apply_llava()


def test_anyres_size_shim_accepts_tuple_style_access(llava_pkg):
    """LLaVA-NeXT's process_anyres_image reads processor.size as a dict or a tuple; transformers 5 has SizeDict."""
    from llava import mm_utils
    from transformers import CLIPImageProcessor

    processor = CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
    image = Image.new("RGB", (90, 40))
    out = mm_utils.process_anyres_image(image, processor, [[56, 112], [112, 56], [112, 112]])
    assert tuple(out.shape) == (3, 3, 56, 56)  # base image + 2 crops of the 112x56 pinpoint
    from biores_plugin.original_llava.shims import _ProcessorView

    view = _ProcessorView(processor)
    assert isinstance(view.size, dict) and min(view.size) == 56 and view.size[0] == 56
    assert view.size["shortest_edge"] == 56 and view.crop_size["height"] == 56
    assert view.image_mean == processor.image_mean


def test_hooks_skip_cleanly_where_hook_points_are_missing(llava_pkg):
    """LLaVA flavours differ (llava-torch vs LLaVA-NeXT): a missing hook point is skipped, never an error."""
    from biores_plugin.original_llava import hooks, model_hooks, trainer_hooks

    class NoHooks:
        pass

    missing = SimpleNamespace()
    assert not trainer_hooks.hook_dataset_index(missing)
    assert not trainer_hooks.hook_data_module(missing)
    assert not trainer_hooks.hook_final_save(missing)
    assert not trainer_hooks.hook_trainer_init(missing)
    assert not model_hooks.hook_prepare_inputs(NoHooks) and not model_hooks.hook_encode_images(NoHooks)
    before = hooks.installed_hooks()
    assert hooks.install_hooks(missing) == before  # already-installed hooks stay, nothing new, no error


def _assert_reverted(expected: dict) -> None:
    from biores_plugin import patching

    for (owner, name), before in expected.items():
        label = f"{getattr(owner, '__name__', owner)}.{name}"
        assert not patching.is_wrapped(owner, name), label
        if before is None:  # an attribute a shim published (transformers.trainer.ALL_LAYERNORM_LAYERS): gone again
            assert not hasattr(owner, name), label
        else:
            assert getattr(owner, name) is before, label


def test_hooks_and_shims_revert_to_the_exact_originals(llava_pkg):
    """Every hook and shim is a recorded patch: reverting puts llava's (and transformers') own objects back,
    also where llava modules imported a function by name; installing again restores the same set."""
    import types

    from llava import mm_utils

    from biores_plugin import patching
    from biores_plugin.original_llava import apply, hooks, remove, shims

    installed = apply()
    groups = ("llava.hooks", "llava.shims")
    labels = {group: sorted(p.label for p in patching.patches(group)) for group in groups}
    expected = {}
    for patch in patching.patches("llava.hooks") + patching.patches("llava.shims"):
        assert patching.is_wrapped(patch.owner, patch.name) and getattr(patch.owner, patch.name) is patch.value
        before = patching.original(patch.owner, patch.name)
        assert before is not patch.value and not hasattr(before, "__biores_patch__"), patch.label  # never a wrapper
        expected[(patch.owner, patch.name)] = before
    assert len(installed["hooks"]) == 8 and {"layernorm_import", "trainer_tokenizer_kwarg"} <= set(installed["shims"])
    by_name = types.ModuleType("llava._biores_by_name")  # a llava module that did `from llava.mm_utils import ...`
    try:
        reverted = remove()
        assert len(reverted["hooks"]) + len(reverted["shims"]) == len(expected)
        assert hooks.installed_hooks() == [] and shims.applied_shims() == []
        assert all(patching.patches(group) == [] for group in groups)
        _assert_reverted(expected)

        by_name.process_images, by_name.process_anyres_image = mm_utils.process_images, mm_utils.process_anyres_image
        sys.modules[by_name.__name__] = by_name
        assert apply() == installed
        assert by_name.process_images is mm_utils.process_images is not expected[(mm_utils, "process_images")]
        assert by_name.process_anyres_image is mm_utils.process_anyres_image
        hooks.uninstall_hooks()
        shims.revert_shims()
        _assert_reverted(expected)
        assert by_name.process_images is expected[(mm_utils, "process_images")]
        assert by_name.process_anyres_image is expected[(mm_utils, "process_anyres_image")]
    finally:
        sys.modules.pop(by_name.__name__, None)
        again = apply()  # the later tests run with everything installed again
    assert again == installed
    assert {group: sorted(p.label for p in patching.patches(group)) for group in groups} == labels
