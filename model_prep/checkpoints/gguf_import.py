"""Turn a GGUF file of a llama-architecture model into a Hugging Face checkpoint directory vLLM loads.

transformers dequantizes the GGUF tensors on load; we detach its GGUF quantizer (save_pretrained refuses a
quantized model), then save safetensors, config, tokenizer (with the GGUF's chat template) and a generation
config that stops on the chat's end-of-turn token and carries the authors' decoding (the GGUF's
`general.sampling.*` keys) or the one the caller names (LIMA's, say).
"""

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from gguf import GGUFReader
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from model_prep.chat_format import TURN_MARKERS
from model_prep.checkpoints import WRITTEN_DTYPE
from model_prep.checkpoints.atomic import write_atomically
from model_prep.checkpoints.decoding import generation_config, gguf_decoding

log = logging.getLogger(__name__)

SUPPORTED_ARCHITECTURES = {"llama"}


class GGUFImportError(ValueError):
    """The GGUF file cannot become a servable checkpoint (wrong architecture, no chat template, ...)."""


def end_of_turn_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The ids that end an assistant turn: EOS plus the chat template's turn terminator when it has one."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for marker in TURN_MARKERS:
        token_id = tokenizer.convert_tokens_to_ids(marker)
        if token_id is not None and token_id != tokenizer.unk_token_id and token_id not in ids:
            ids.append(token_id)
    if not ids:
        raise GGUFImportError("the tokenizer has no EOS or end-of-turn token to stop generation on")
    return ids


def recorded_decoding(gguf_file: Path) -> dict[str, Any]:
    """The sampling settings recorded in the GGUF's metadata, if any."""
    fields = GGUFReader(gguf_file).fields
    return gguf_decoding({name: fields[name].contents() for name in fields if name.startswith("general.sampling.")})


def import_gguf(
    gguf_file: Path, out_dir: Path, dtype: str = WRITTEN_DTYPE, decoding: Mapping[str, Any] | None = None
) -> Path:
    """Convert `gguf_file` into `out_dir` (written atomically: a half-converted directory never exists).
    `decoding` None keeps what the GGUF records (nothing recorded: the server's neutral defaults)."""
    gguf_file = gguf_file.resolve()
    if not gguf_file.is_file():
        raise GGUFImportError(f"no such GGUF file: {gguf_file}")
    if decoding is None:
        decoding = recorded_decoding(gguf_file)
    torch_dtype = getattr(torch, dtype)
    source: dict[str, Any] = {"pretrained_model_name_or_path": gguf_file.parent, "gguf_file": gguf_file.name}
    tokenizer = AutoTokenizer.from_pretrained(**source)
    if not tokenizer.chat_template:
        raise GGUFImportError(f"{gguf_file.name} carries no chat template; a chat server needs one")
    model: Any = AutoModelForCausalLM.from_pretrained(**source, dtype=torch_dtype)
    if model.config.model_type not in SUPPORTED_ARCHITECTURES:
        raise GGUFImportError(
            f"architecture {model.config.model_type!r} is not supported (supported: {SUPPORTED_ARCHITECTURES})"
        )
    # Weights are plain tensors after dequantization; drop the quantizer so save_pretrained accepts the model.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.generation_config = generation_config(end_of_turn_ids(tokenizer), tokenizer.bos_token_id, decoding)

    def write(staging: Path) -> None:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)

    write_atomically(out_dir, write)
    log.info("imported %s -> %s (%s parameters)", gguf_file.name, out_dir, f"{model.num_parameters():,}")
    return out_dir
