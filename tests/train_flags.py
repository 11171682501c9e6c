"""What the training tests share: the flags of a CPU run without reports, the tiny SigLIP LLaVA, and the
environment of a training subprocess."""

import os

#: A deterministic CPU run that reports nowhere and draws no progress bar.
CPU_RUN = ["--report_to", "none", "--disable_tqdm", "true", "--seed", "0", "--use_cpu", "true"]

#: The tiny random LLaVA (``--model_name_or_path tiny``) with a small SigLIP tower.
TINY_CONFIG = '{"vision_hidden": 32, "text_hidden": 32, "heads": 2}'
TINY_SIGLIP = ["--model_name_or_path", "tiny", "--vision_tower", "siglip", "--tiny_config", TINY_CONFIG]


def offline_env(**extra: str) -> dict[str, str]:
    """A training subprocess's environment: the hub offline, one thread, no tokenizer workers, no wandb."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "WANDB_DISABLED": "true",
        **extra,
    }
