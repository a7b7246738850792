"""LIMA's end-of-turn token: a new special token after every utterance, or the tokenizer's own terminator."""

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from model_prep.chat_format import LIMA_CHAT_TEMPLATE, LIMA_EOT, TURN_MARKERS


def install_end_of_turn(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, reuse_existing: bool) -> int:
    """Set the chat template training and serving share, and return the end-of-turn id.

    reuse_existing: keep the tokenizer's chat template and its turn terminator (e.g. ChatML's <|im_end|>), which
    an instruct model already knows. Otherwise (the paper): add <EOT> as a new special token, distinct from the
    pretraining EOS, with its embedding rows initialised to the mean of the existing ones, and LIMA's template.
    """
    if reuse_existing:
        template = tokenizer.chat_template or ""
        marker = next((m for m in TURN_MARKERS if m in template and m in tokenizer.get_vocab()), None)
        if marker is None:
            raise ValueError("the tokenizer has no chat template with an end-of-turn token to reuse "
                             f"(looked for {', '.join(TURN_MARKERS)}); train with a new <EOT> token instead")
        return tokenizer.convert_tokens_to_ids(marker)
    if LIMA_EOT not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [LIMA_EOT]})
    tokenizer.chat_template = LIMA_CHAT_TEMPLATE
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    return tokenizer.convert_tokens_to_ids(LIMA_EOT)
