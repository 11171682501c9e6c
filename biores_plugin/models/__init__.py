"""Models: native-resolution LLaVA on transformers and its lmms-eval wrapper."""
