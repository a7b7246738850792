"""Checkpoints in and out: GGUF import, the embedded default model, LoRA merge, decoding defaults, atomic writes."""

DTYPES = ("bfloat16", "float16", "float32")
WRITTEN_DTYPE = "bfloat16"  # what a merged or imported checkpoint is written in unless told otherwise
