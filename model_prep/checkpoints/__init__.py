"""Checkpoints in and out: GGUF import, the embedded default model, LoRA merge, decoding defaults, atomic writes."""
