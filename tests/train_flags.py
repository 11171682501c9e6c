"""Command-line flags the training tests share: a CPU run without reports, and the tiny SigLIP LLaVA."""

#: A deterministic CPU run that reports nowhere and draws no progress bar.
CPU_RUN = ["--report_to", "none", "--disable_tqdm", "true", "--seed", "0", "--use_cpu", "true"]

#: The tiny random LLaVA (``--model_name_or_path tiny``) with a small SigLIP tower.
TINY_CONFIG = '{"vision_hidden": 32, "text_hidden": 32, "heads": 2}'
TINY_SIGLIP = ["--model_name_or_path", "tiny", "--vision_tower", "siglip", "--tiny_config", TINY_CONFIG]
