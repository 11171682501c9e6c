"""A chat template that cannot render a prompt is a one-line error, never the prompt itself."""

from __future__ import annotations

import pytest

from biores_plugin.errors import BioresConfigError


@pytest.fixture(scope="module")
def processor():
    from biores_plugin.tiny import build_tiny_llava

    _, processor = build_tiny_llava(["what", "is", "this"])
    return processor


def test_a_failing_template_is_one_line_error(processor):
    processor.tokenizer.chat_template = "{{ raise_exception('this template needs a system turn') }}"
    for n_images in (0, 1):  # with no image the old fallback string became a text-only prompt
        with pytest.raises(BioresConfigError) as err:
            processor.build_prompt("what is this", n_images)
        assert "\n" not in str(err.value) and "this template needs a system turn" in str(err.value)


def test_a_plain_string_template_gets_the_images_inline(processor):
    # a template written for string content: structured parts fail (str + list), the inline form renders
    processor.tokenizer.chat_template = "{% for m in messages %}USER: {{ m['content'] + '' }}\n{% endfor %}ASSISTANT:"
    prompt = processor.build_prompt("what is this", 2)
    assert prompt.count(processor.image_token) == 2 and prompt.startswith("USER: ") and "what is this" in prompt
