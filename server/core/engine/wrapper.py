"""The vLLM engine in process, behind what the routes need: names (the base model's and its LoRA adapters'),
limits, default sampling, prompt rendering, generate, abort."""

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.openai.models.protocol import BaseModelPath, LoRAModulePath
from vllm.entrypoints.openai.models.serving import OpenAIServingModels
from vllm.inputs import tokens_input
from vllm.lora.request import LoRARequest
from vllm.outputs import RequestOutput
from vllm.platforms import current_platform
from vllm.v1.engine.async_llm import AsyncLLM

from model_prep.chat_format import Message, chat_token_ids
from server.core.failures import Invalid

log = logging.getLogger(__name__)


class ChatEngine:
    """What the routes need from vLLM: names, limits, default sampling, prompt rendering, generate, abort."""

    def __init__(self, engine_args: AsyncEngineArgs, lora_modules: Sequence[LoRAModulePath] = (),
                 log_prompts: bool = False) -> None:
        self.engine = AsyncLLM.from_engine_args(engine_args)
        self.log_prompts = log_prompts  # --log-prompts: debugging only (vLLM's own request log has no prompts)
        model_config = self.engine.model_config
        names = engine_args.served_model_name or model_config.model
        self.model_names: list[str] = [names] if isinstance(names, str) else list(names)
        # vLLM's own registry of LoRA adapters: those of --lora-modules (loaded by `load_adapters`) and those
        # loaded and unloaded at run time; requests name one as their `model`.
        self.models = OpenAIServingModels(
            self.engine, [BaseModelPath(name, model_config.model) for name in self.model_names],
            lora_modules=list(lora_modules) or None)
        self.max_model_len: int = model_config.max_model_len
        # The model's generation config (LIMA's decoding for model_prep checkpoints), as SamplingParams fields.
        self.default_sampling: dict[str, Any] = model_config.get_diff_sampling_param()
        self.tokenizer: Any = self.engine.get_tokenizer()  # a Hugging Face tokenizer, typed by vLLM as a protocol
        self.max_num_seqs: int = self.engine.vllm_config.scheduler_config.max_num_seqs
        # vLLM 0.32's CPU LoRA kernels (PunicaWrapperCPU) fail on prompt logprobs batched with other requests,
        # and the engine dies with them (reproduced here: two requests in a batch, one asking for prompt logprobs).
        lora_on_cpu = self.engine.vllm_config.lora_config is not None and current_platform.is_cpu()
        self.serves_prompt_logprobs: bool = not lora_on_cpu

    async def load_adapters(self) -> None:
        """The --lora-modules adapters, loaded into the engine (a ValueError names one that does not load)."""
        await self.models.init_static_loras()

    @property
    def model_name(self) -> str:
        return self.model_names[0]

    @property
    def adapters(self) -> dict[str, LoRARequest]:
        """Adapter name -> vLLM's request for it, in the order they were loaded."""
        return self.models.lora_requests

    def serves(self, name: str) -> bool:
        return name in self.model_names or name in self.adapters

    @property
    def is_healthy(self) -> bool:
        return not self.engine.errored

    def chat_prompt_ids(
        self, messages: Sequence[Message], add_generation_prompt: bool = True, tools: list[dict[str, Any]] | None = None
    ) -> list[int]:
        return chat_token_ids(self.tokenizer, messages, add_generation_prompt, tools)

    def text_prompt_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    @property
    def vocabulary_size(self) -> int:
        return len(self.tokenizer)

    def check_token_ids(self, ids: Sequence[int], param: str) -> None:
        """Token ids a client sent, each in the vocabulary (a clear 400 instead of a failure deep in the engine)."""
        vocabulary = self.vocabulary_size
        if unknown := [token for token in ids if not 0 <= token < vocabulary]:
            raise Invalid(f"Token ids must be in [0, {vocabulary}); got {unknown[:5]}.", param=param,
                          code="invalid_value")

    def generate(
        self, prompt_ids: list[int], params: SamplingParams, request_id: str, model: str | None = None
    ) -> AsyncIterator[RequestOutput]:
        """Generate with the base model, or with the LoRA adapter `model` names."""
        adapter = self.adapters.get(model) if model else None
        if self.log_prompts:
            log.info("request %s prompt (--log-prompts): %r", request_id, self.tokenizer.decode(prompt_ids))
        return self.engine.generate(tokens_input(prompt_ids), params, request_id, lora_request=adapter)

    async def abort(self, request_id: str) -> None:
        await self.engine.abort(request_id)

    def shutdown(self) -> None:
        self.engine.shutdown()
