"""Function calling on vLLM's own pieces: its chat request validates the tools and the tool choice, its JSON schema
constrains a forced call (tool_choice "required" or a named function: structured outputs make the answer a call
whatever the model), and its tool-parser registry reads calls out of free text for "auto" (`--tool-call-parser`).

A `ToolCalling` holds one request's choice; each choice of the answer gets a `ToolCallStream` that turns its text
deltas into OpenAI's content and `tool_calls` deltas, and its whole text into the final message's calls."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from pydantic import ValidationError
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest as VllmChatRequest
from vllm.exceptions import VLLMValidationError
from vllm.sampling_params import StructuredOutputsParams
from vllm.tool_parsers import ToolParser, ToolParserManager
from vllm.tool_parsers.utils import get_json_schema_from_tools

from server.failures import Invalid
from server.protocol import ChatCompletionRequest, DeltaFunctionCall, DeltaToolCall, FunctionCall, ToolCall, new_id

Mode = Literal["named", "required", "auto"]


@dataclass
class ToolCalling:
    """How one request's answers become tool calls."""

    mode: Mode
    request: VllmChatRequest  # vLLM's view of the request, which its parsers read
    parser_class: type[ToolParser] | None
    tokenizer: Any

    @property
    def structured_outputs(self) -> StructuredOutputsParams | None:
        """The grammar that makes a forced answer a call (None for "auto", unless the parser asks for one)."""
        schema = get_json_schema_from_tools(cast(Any, self.request.tool_choice), vllm_tools(self.request),
                                            self.request.parallel_tool_calls)
        if schema is not None:
            return StructuredOutputsParams(json=schema)
        return self.request.structured_outputs

    @property
    def skip_special_tokens(self) -> bool:
        return bool(self.request.skip_special_tokens)

    def stream(self) -> "ToolCallStream":
        parser = self.parser_class(self.tokenizer, vllm_tools(self.request)) if self.parser_class else None
        return ToolCallStream(self, parser)


def check_tool_parser(name: str) -> None:
    """A parser name vLLM knows, or a ValueError listing the ones it does."""
    known = sorted({*ToolParserManager.tool_parsers, *ToolParserManager.lazy_parsers})
    if name not in known:
        raise ValueError(f"unknown --tool-call-parser '{name}'; vLLM has: {', '.join(known)}")


def vllm_tools(request: VllmChatRequest) -> Any:
    """The request's tools as vLLM's helpers take them (they type the list more widely than its request does)."""
    return request.tools


def tool_calling(body: ChatCompletionRequest, parser_name: str | None, tokenizer: Any) -> ToolCalling | None:
    """The request's tool calling, checked by vLLM's own request model; None when it asks for no call."""
    if not body.tools or body.tool_choice == "none":
        return None
    fields = body.model_dump(include={"tools", "tool_choice", "parallel_tool_calls"}, exclude_none=True)
    try:
        request = VllmChatRequest.model_validate({"model": "lima", "messages": [], **fields})
    except VLLMValidationError as exc:  # vLLM's own checks of tools against tool_choice
        raise Invalid(str(exc.args[0]), param=exc.parameter or "tool_choice", code="invalid_value") from exc
    except ValidationError as exc:
        message = str(exc.errors()[0].get("ctx", {}).get("error", exc.errors()[0]["msg"]))
        raise Invalid(message, param="tool_choice", code="invalid_value") from exc
    mode: Mode = "auto" if request.tool_choice == "auto" else "required" if request.tool_choice == "required" \
        else "named"
    parser_class = None
    if mode == "auto":
        if parser_name is None:
            raise Invalid(
                'tool_choice "auto" (the default with tools) needs a server started with --enable-auto-tool-choice '
                'and --tool-call-parser NAME; "required" or a named function work with any model.',
                param="tool_choice", code="invalid_value")
        parser_class = ToolParserManager.get_tool_parser(parser_name)
        adjusted = parser_class(tokenizer, vllm_tools(request)).adjust_request(request)  # e.g. keep special tokens
        request = cast(VllmChatRequest, adjusted)
    return ToolCalling(mode, request, parser_class, tokenizer)


@dataclass
class ToolCallStream:
    """One choice's text turned into content and tool calls, streamed (`delta`) or whole (`finish`)."""

    calling: ToolCalling
    parser: ToolParser | None
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    call_id: str = field(default_factory=lambda: new_id("call_"))
    called: bool = False  # a call was sent

    def finish_reason(self, engine_reason: str | None) -> str | None:
        """OpenAI's: "tool_calls" when the model called (a named function's answer ends as "stop", as OpenAI's)."""
        if engine_reason == "stop" and self.called and self.calling.mode != "named":
            return "tool_calls"
        return engine_reason

    def delta(self, text: str, token_ids: Sequence[int]) -> tuple[str | None, list[DeltaToolCall] | None]:
        """(content, tool call pieces) to stream for this piece of the answer."""
        content, calls = self._delta(text, token_ids)
        self.called = self.called or bool(calls)
        return content, calls

    def _delta(self, text: str, token_ids: Sequence[int]) -> tuple[str | None, list[DeltaToolCall] | None]:
        previous_text, previous_ids = self.text, list(self.token_ids)
        self.text += text
        self.token_ids += token_ids
        mode = self.calling.mode
        if mode == "named":  # the answer is the arguments, as they come
            first = not previous_text
            name = self.calling.request.tool_choice.function.name if first else None  # type: ignore[union-attr]
            return None, [DeltaToolCall(index=0, id=self.call_id if first else None, type="function" if first else None,
                                        function=DeltaFunctionCall(name=name, arguments=text))] if text else None
        if mode == "required":  # a JSON list of calls: sent whole when it is complete (see `finish`)
            return None, None
        assert self.parser is not None
        message = self.parser.extract_tool_calls_streaming(
            previous_text, self.text, text, previous_ids, self.token_ids, list(token_ids), self.calling.request)
        if message is None:
            return None, None
        calls = [DeltaToolCall.model_validate(call.model_dump(exclude_none=True)) for call in message.tool_calls]
        return message.content, calls or None

    def finish(self, text: str) -> tuple[str | None, list[ToolCall]]:
        """(content, calls) of a whole answer."""
        content, calls = self._finish(text)
        self.called = bool(calls)
        return content, calls

    def _finish(self, text: str) -> tuple[str | None, list[ToolCall]]:
        mode = self.calling.mode
        if mode == "named":
            name = self.calling.request.tool_choice.function.name  # type: ignore[union-attr]
            return None, [ToolCall(id=self.call_id, function=FunctionCall(name=name, arguments=text))]
        if mode == "required":
            try:
                return None, [ToolCall(function=FunctionCall(name=c["name"], arguments=json.dumps(c["parameters"])))
                              for c in json.loads(text)]
            except (ValueError, KeyError, TypeError):  # cut off by max_tokens: no complete call to give
                return text, []
        assert self.parser is not None
        found = self.parser.extract_tool_calls(text, self.calling.request)
        if not found.tools_called:
            return found.content, []
        calls = [ToolCall(id=call.id, function=FunctionCall(name=call.function.name, arguments=call.function.arguments))
                 for call in found.tool_calls]
        return found.content, calls

    def final_calls(self) -> list[DeltaToolCall] | None:
        """What a streamed "required" answer sends when it is complete: every call whole."""
        if self.calling.mode != "required":
            return None
        _, calls = self.finish(self.text)
        return [DeltaToolCall(index=index, id=call.id, type="function",
                              function=DeltaFunctionCall(name=call.function.name, arguments=call.function.arguments))
                for index, call in enumerate(calls)] or None
