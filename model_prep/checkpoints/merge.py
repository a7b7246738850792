"""`lima prep merge`: a LoRA checkpoint (adapter + tokenizer + LIMA decoding) merged into its base model's
weights, written as one safetensors checkpoint that `lima serve` (vLLM) loads like any other model."""

from pathlib import Path

import torch
from peft import PeftConfig, PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, PreTrainedModel

from model_prep.checkpoints import WRITTEN_DTYPE
from model_prep.checkpoints.atomic import write_atomically
from model_prep.train.end_of_turn import embedding_rows


def base_with_adapter(adapter_dir: Path, base: str | None = None) -> PeftModel:
    """The base model (resized to the adapter's tokenizer: a new <EOT> row is replaced by the trained
    embeddings the adapter carries) with the adapter applied, in float32."""
    if not (adapter_dir / "adapter_config.json").is_file():  # else peft looks for it on a model hub
        raise FileNotFoundError(f"{adapter_dir}: no adapter_config.json: not a LoRA run's epoch directory")
    base = base or PeftConfig.from_pretrained(str(adapter_dir)).base_model_name_or_path
    if not base:
        raise ValueError(f"{adapter_dir}/adapter_config.json names no base model: give the base with --base")
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if len(tokenizer) > embedding_rows(model):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return PeftModel.from_pretrained(model, adapter_dir).eval()


def merge(adapter_dir: Path, out_dir: Path, base: str | None = None, dtype: str = WRITTEN_DTYPE) -> Path:
    """Merge and save atomically (a half-written checkpoint never exists at `out_dir`)."""
    merged: PreTrainedModel = base_with_adapter(adapter_dir, base).merge_and_unload()
    merged = merged.to(getattr(torch, dtype))
    merged.generation_config = GenerationConfig.from_pretrained(adapter_dir)
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)

    def write(staging: Path) -> None:
        merged.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)

    return write_atomically(out_dir, write)
