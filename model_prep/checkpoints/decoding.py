"""Decoding settings written into a checkpoint's generation config, which vLLM serves as the model's defaults.

Checkpoints model_prep trains get LIMA's decoding (paper, section 2). Imported models keep their authors'
recommendation (the GGUF's `general.sampling.*` keys, or the model card's for the embedded default) unless the
import is told to use LIMA's: a model LIMA's recipe never touched was not tuned for LIMA's sampling.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import GenerationConfig

LIMA_DECODING = {
    "do_sample": True,
    "top_p": 0.9,
    "temperature": 0.7,
    "repetition_penalty": 1.2,
    "max_new_tokens": 2048,
}
# GGUF metadata keys (llama.cpp's general.sampling.*) -> generation config fields.
GGUF_SAMPLING_KEYS = {
    "general.sampling.temp": "temperature",
    "general.sampling.top_p": "top_p",
    "general.sampling.top_k": "top_k",
    "general.sampling.min_p": "min_p",
    "general.sampling.penalty_repeat": "repetition_penalty",
}


def generation_config(
    eos_token_ids: list[int], bos_token_id: int | None, decoding: Mapping[str, Any] = LIMA_DECODING
) -> "GenerationConfig":
    """A generation config that stops on every end-of-turn id and samples with `decoding` (LIMA's by default)."""
    from transformers import GenerationConfig  # here, so that reading the settings above does not load torch

    return GenerationConfig(
        **decoding,
        eos_token_id=eos_token_ids if len(eos_token_ids) > 1 else eos_token_ids[0],
        bos_token_id=bos_token_id,
    )


def gguf_decoding(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The sampling settings a GGUF's authors recorded in it (none: the server's neutral defaults)."""
    found = {field: metadata[key] for key, field in GGUF_SAMPLING_KEYS.items() if key in metadata}
    return {"do_sample": True, **found} if found else {}
