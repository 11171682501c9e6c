"""The synthetic benchmark's prompt: one function for the ``biores_synth`` task and for training.

The task yaml's ``post_prompt`` is :data:`POST_PROMPT` (a test checks they agree).
"""

from __future__ import annotations

from typing import Any

POST_PROMPT = "\nAnswer with one word."


def question_prompt(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    """``<question> Options: a, b.`` between lmms-eval's pre and post prompts."""
    kwargs = (
        {"pre_prompt": "", "post_prompt": POST_PROMPT}
        if lmms_eval_specific_kwargs is None
        else lmms_eval_specific_kwargs
    )
    options = ", ".join(doc["options"])
    return f"{kwargs.get('pre_prompt', '')}{doc['question']} Options: {options}.{kwargs.get('post_prompt', '')}"
