"""med_eval_*: the study's evaluation protocol (cliangyu/med_eval) as lmms-eval tasks (README.md)."""

from biores_plugin.eval.med_eval import (  # noqa: F401  (yaml !function targets)
    doc_to_messages,
    doc_to_text,
    doc_to_visual,
    process_results,
    ubench_doc_to_messages,
    ubench_doc_to_text,
    ubench_process_docs,
    ubench_process_results,
)
