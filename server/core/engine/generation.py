"""From a validated request to engine output: sampling parameters, context checks, and one generation loop
shared by chat and text completions (streamed as deltas, or collected)."""

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vllm import SamplingParams
from vllm.exceptions import GracefulHTTPError, VLLMClientError, VLLMValidationError
from vllm.logprobs import Logprob
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
from vllm.v1.engine.exceptions import EngineDeadError

from server.core import metrics
from server.core.engine.admission import Admission
from server.core.engine.loop_guard import LoopGuard
from server.core.engine.tools import ToolCalling
from server.core.engine.wrapper import ChatEngine
from server.core.failures import Failure, Invalid, NotFound, Overloaded, RateLimited, Unavailable
from server.core.ids import new_id
from server.core.schema import DeltaToolCall, ResponseFormat, SamplingFields, TokenLogprob, TopLogprob

SAMPLING_FIELDS = (
    "temperature", "top_p", "top_k", "min_p", "seed", "presence_penalty", "frequency_penalty", "repetition_penalty",
    "min_tokens", "ignore_eos",
)
# vLLM's stand-in for a logprob of minus infinity (JSON has no infinity).
LOWEST_LOGPROB = -9999.0
# Why an answer the loop guard ended stopped (finish_reason is OpenAI's `stop`).
REPETITION = "repetition"


def resolve_model(requested: str | None, engine: ChatEngine) -> str:
    """The served name a request asked for (the base model or one of its LoRA adapters), the base one if none."""
    if requested is None or engine.serves(requested):
        return requested or engine.model_name
    raise NotFound(
        f"The model '{requested}' does not exist. Available: {', '.join([*engine.model_names, *engine.adapters])}.",
        param="model", code="model_not_found",
    )


def engine_rejection(status: int) -> type[Failure]:
    """The failure a vLLM rejection stands for, read from the HTTP status vLLM gives it."""
    return RateLimited if status == 429 else Overloaded if status >= 500 else Invalid


def sampling_params(
    request: SamplingFields, engine: ChatEngine, prompt_len: int, prompt_param: str, max_choices: int,
    tools: ToolCalling | None = None, incremental: bool = False,
) -> SamplingParams:
    """Request fields over the model's generation defaults, after the checks vLLM would fail less clearly; the
    engine sends its output piece by piece when the request streams or `incremental` (the loop guard reads it)."""
    if request.n > max_choices:
        raise Invalid(f"'n' must be at most {max_choices}, got {request.n}.", param="n", code="invalid_value")
    room = engine.max_model_len - prompt_len
    if room < 1:
        raise Invalid(
            f"This model's maximum context length is {engine.max_model_len} tokens, "
            f"but the prompt has {prompt_len} tokens. Shorten the {prompt_param}.",
            param=prompt_param, code="context_length_exceeded",
        )
    if request.prompt_logprobs_count is not None and not engine.serves_prompt_logprobs:
        raise Invalid(
            "Prompt logprobs ('echo' with 'logprobs') are not served while LoRA is enabled on the CPU backend: "
            "vLLM's CPU LoRA kernels fail on them when other requests share the batch, which stops the engine. "
            "Ask without 'echo', or use a server without --enable-lora.", param="echo", code="unsupported_value")
    defaults = dict(engine.default_sampling)
    default_max = defaults.pop("max_tokens", room)
    if request.max_tokens is not None and request.max_tokens > room:
        raise Invalid(
            f"This model's maximum context length is {engine.max_model_len} tokens. However, you requested "
            f"{prompt_len + request.max_tokens} tokens ({prompt_len} in the {prompt_param}, "
            f"{request.max_tokens} in the completion). Reduce the {prompt_param} or max_tokens.",
            param="max_tokens", code="context_length_exceeded",
        )
    if request.top_k is not None and request.top_k > engine.vocabulary_size:
        raise Invalid(f"'top_k' must be -1 or 0 (off), or at most the vocabulary's {engine.vocabulary_size} tokens; "
                      f"got {request.top_k}.", param="top_k", code="invalid_value")
    logit_bias = None
    if request.logit_bias:
        vocabulary = engine.vocabulary_size  # (a key of 10 digits or more is past any vocabulary: not parsed)
        if outside := [token[:24] for token in request.logit_bias if len(token) > 9 or int(token) >= vocabulary]:
            raise Invalid(f"'logit_bias' keys are token ids in [0, {vocabulary}); got {outside[:5]}.",
                          param="logit_bias", code="invalid_value")
        logit_bias = {int(token): bias for token, bias in request.logit_bias.items()}
    chosen = {name: getattr(request, name) for name in SAMPLING_FIELDS if getattr(request, name) is not None}
    stop = [request.stop] if isinstance(request.stop, str) else request.stop
    try:
        return SamplingParams(
            **{**defaults, **chosen},
            n=request.n,
            max_tokens=request.max_tokens or min(default_max, room),
            stop=stop,
            output_kind=RequestOutputKind.DELTA if request.stream or incremental else RequestOutputKind.FINAL_ONLY,
            structured_outputs=tools.structured_outputs if tools else structured_outputs(request.response_format),
            skip_special_tokens=tools.skip_special_tokens if tools else True,
            logprobs=request.top_logprobs_count,
            prompt_logprobs=request.prompt_logprobs_count,
            logit_bias=logit_bias,
        )
    except (ValueError, VLLMValidationError) as exc:
        raise Invalid(str(exc), param=getattr(exc, "parameter", None), code="invalid_value") from exc


def structured_outputs(response_format: ResponseFormat | None) -> StructuredOutputsParams | None:
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return StructuredOutputsParams(json_object=True)
    assert response_format.json_schema is not None  # ResponseFormat refuses a json_schema type without one
    return StructuredOutputsParams(json=response_format.json_schema.schema_)


def start_generation(
    request: SamplingFields, engine: ChatEngine, model: str, route: str, id_prefix: str, prompt_ids: list[int],
    prompt_param: str, max_choices: int, admission: Admission, tools: ToolCalling | None = None,
    loop_guard: int = 0,
) -> "Generation":
    """A generation with an admission slot (or 503 at capacity), after the request's checks; `model` is the
    served name `resolve_model` gave (the base model or a LoRA adapter); `loop_guard` is the server's, which the
    request's own field overrides."""
    repeats = loop_guard if request.loop_guard is None else request.loop_guard
    params = sampling_params(request, engine, len(prompt_ids), prompt_param, max_choices, tools, bool(repeats))
    if request.ignored_fields:
        metrics.IGNORED_FIELDS.labels(route).inc(len(request.ignored_fields))
    generation = Generation(engine, route, new_id(id_prefix), prompt_ids, params, admission.admit(), model,
                            loop_guard=repeats)
    weakref.finalize(generation, generation.release)  # a generation that never streams gives its slot back
    return generation


def token_logprob(token_id: int, candidates: dict[int, Logprob], top: int, tokenizer: Any) -> TokenLogprob:
    """One token's logprob in OpenAI's shape, with the `top` most likely tokens at its position."""

    def entry(candidate: int, logprob: Logprob) -> dict[str, Any]:
        token = logprob.decoded_token if logprob.decoded_token is not None else tokenizer.decode([candidate])
        return {"token": token, "logprob": max(logprob.logprob, LOWEST_LOGPROB), "bytes": list(token.encode())}

    ranked = sorted(candidates.items(), key=lambda pair: pair[1].rank or 0)[:top]
    return TokenLogprob(**entry(token_id, candidates[token_id]),
                        top_logprobs=[TopLogprob(**entry(*pair)) for pair in ranked])


@dataclass
class ChoiceDelta:
    index: int
    text: str
    finish_reason: str | None
    logprobs: list[TokenLogprob] | None = None  # one per token of `text`, when asked for
    token_ids: Sequence[int] = ()
    tool_calls: list[DeltaToolCall] | None = None  # with tools: the calls' pieces (and `text` is the content)
    stop_reason: str | None = None  # REPETITION when the loop guard ended the choice


@dataclass
class Generation:
    """One engine request; iterating yields text deltas per choice, and counts tokens as they come."""

    engine: ChatEngine
    route: str
    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    release: Callable[[], None]  # the admission slot
    model: str  # the served name: the base model or a LoRA adapter
    loop_guard: int = 0  # end a choice once a sentence was written this many times; 0: never
    started: float = field(default_factory=time.perf_counter)
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served by vLLM's prefix cache
    # Each prompt token's logprob (None for the first, which has no context) when asked for (echo).
    prompt_logprobs: list[TokenLogprob | None] | None = None
    finished: bool = False

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    async def deltas(self) -> AsyncIterator[ChoiceDelta]:
        metrics.PROMPT_TOKENS.labels(self.route, self.model).inc(self.prompt_tokens)
        generated = metrics.GENERATED_TOKENS.labels(self.route, self.model)  # looked up once, not per token
        first = True
        guards = {index: LoopGuard(self.loop_guard) for index in range(self.params.n)} if self.loop_guard else {}
        try:
            async for output in self.engine.generate(self.prompt_ids, self.params, self.request_id, self.model):
                if output.num_cached_tokens and not self.cached_tokens:
                    self.cached_tokens = output.num_cached_tokens
                    metrics.CACHED_PROMPT_TOKENS.labels(self.route, self.model).inc(self.cached_tokens)
                if output.prompt_logprobs is not None and self.prompt_logprobs is None:
                    self.prompt_logprobs = self.logprobs_of(self.prompt_ids, output.prompt_logprobs)
                for choice in output.outputs:
                    if choice.index not in guards and self.loop_guard:
                        continue  # the guard ended this choice; the others go on
                    if first and choice.token_ids:
                        waited = time.perf_counter() - self.started
                        metrics.TIME_TO_FIRST_TOKEN.labels(self.route, self.model).observe(waited)
                        first = False
                    self.completion_tokens += len(choice.token_ids)
                    generated.inc(len(choice.token_ids))
                    logprobs = None
                    if choice.logprobs is not None:
                        logprobs = [entry for entry in self.logprobs_of(choice.token_ids, choice.logprobs) if entry]
                    finish_reason, stop_reason = choice.finish_reason, None
                    guard = guards.get(choice.index)
                    if guard and finish_reason is None and guard.feed(choice.text):
                        finish_reason, stop_reason = "stop", REPETITION
                        del guards[choice.index]
                        metrics.LOOP_GUARD_STOPS.labels(self.route, self.model).inc()
                    yield ChoiceDelta(choice.index, choice.text, finish_reason, logprobs, choice.token_ids,
                                      stop_reason=stop_reason)
                if self.loop_guard and not guards:
                    break  # every choice ended by the guard: the engine request is aborted below
                self.finished = output.finished
        except EngineDeadError as exc:
            raise Unavailable("The engine has stopped; the server must be restarted.", code="engine_dead") from exc
        except GracefulHTTPError as exc:
            # vLLM's own admission control: a rejection that a retry may get past.
            raise engine_rejection(int(exc.http_status))(exc.message, retry_after=1) from exc
        except VLLMClientError as exc:
            raise Invalid(str(exc), param=getattr(exc, "parameter", None)) from exc
        except (asyncio.CancelledError, GeneratorExit):
            metrics.ABORTED.labels(self.route, self.model).inc()
            raise
        finally:
            self.release()
            if not self.finished:
                # The client went away or an error cut the stream: free the engine's capacity now.
                await asyncio.shield(self.engine.abort(self.request_id))

    def logprobs_of(
        self, token_ids: Sequence[int], positions: Iterable[dict[int, Logprob] | None]
    ) -> list[TokenLogprob | None]:
        top = self.params.logprobs or 0
        return [
            token_logprob(token, candidates, top, self.engine.tokenizer) if candidates else None
            for token, candidates in zip(token_ids, positions, strict=True)
        ]

    async def collect(self, deltas: AsyncIterator[ChoiceDelta] | None = None) -> list[ChoiceDelta]:
        """All choices, complete, in index order (non-streaming responses), from `deltas` or this generation."""
        texts: dict[int, list[str]] = {i: [] for i in range(self.params.n)}
        logprobs: dict[int, list[TokenLogprob]] = {i: [] for i in range(self.params.n)}
        reasons: dict[int, str | None] = {}
        async for delta in deltas or self.deltas():
            texts[delta.index].append(delta.text)
            logprobs[delta.index] += delta.logprobs or []
            reasons[delta.index] = delta.finish_reason
        wanted = self.params.logprobs is not None
        return [ChoiceDelta(i, "".join(parts), reasons.get(i), logprobs[i] if wanted else None)
                for i, parts in texts.items()]
