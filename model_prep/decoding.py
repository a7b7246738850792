"""LIMA's decoding settings (paper, section 2): written into every checkpoint model_prep exports."""

from transformers import GenerationConfig

LIMA_DECODING = {
    "do_sample": True,
    "top_p": 0.9,
    "temperature": 0.7,
    "repetition_penalty": 1.2,
    "max_new_tokens": 2048,
}


def lima_generation_config(eos_token_ids: list[int], bos_token_id: int | None) -> GenerationConfig:
    """A generation config that stops on every end-of-turn id and samples the way LIMA did."""
    return GenerationConfig(
        **LIMA_DECODING,
        eos_token_id=eos_token_ids if len(eos_token_ids) > 1 else eos_token_ids[0],
        bos_token_id=bos_token_id,
    )
