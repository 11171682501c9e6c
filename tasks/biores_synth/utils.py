"""biores_synth: the offline, procedural, resolution-sensitive benchmark.

Each row is one question about one generated image (fluorescence puncta, H&E mitosis,
fundus microaneurysms, striated cells): a *fine* question whose decisive detail vanishes
below its critical scale, and a *coarse* one answerable at low resolution. The answer is one
word from ``options``; scoring takes the first option named in the response.
"""

from biores_plugin.lmms_tasks import (
    aggregate_score,
    aggregate_where,
    chat_messages,
    choose_option,
    normalize_answer,
    size_record,
    sweep_getattr,
    sweep_image,
)

# process_docs_224, process_docs_native, ... for any resolution (PEP 562 module __getattr__).
__getattr__ = sweep_getattr(image_column="image")


def doc_to_visual(doc):
    return [sweep_image(doc["image"], int(doc["biores_resolution"]))]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kwargs = lmms_eval_specific_kwargs or {}
    options = ", ".join(doc["options"])
    return f"{kwargs.get('pre_prompt', '')}{doc['question']} Options: {options}.{kwargs.get('post_prompt', '')}"


def doc_to_messages(doc, lmms_eval_specific_kwargs=None):
    return chat_messages(doc_to_visual(doc)[0], doc_to_text(doc, lmms_eval_specific_kwargs))


def process_results(doc, results):
    chosen = choose_option(results[0] if results else "", doc["options"])
    record = {
        "id": doc["id"],
        "score": float(chosen is not None and normalize_answer(chosen) == normalize_answer(doc["answer"])),
        "question_type": doc["question_type"],
        "generator": doc["generator"],
        "critical_scale_px": float(doc["critical_scale_px"]),
        **size_record(doc),
    }
    return {"accuracy": record, "fine_accuracy": record, "coarse_accuracy": record}


aggregate_accuracy = aggregate_score
aggregate_fine = aggregate_where("question_type", "fine")
aggregate_coarse = aggregate_where("question_type", "coarse")
