"""Function calling on vLLM's own pieces: its chat request validates the tools and the tool choice, its JSON schema
constrains a forced call (tool_choice "required" or a named function: structured outputs make the answer a call
whatever the model), and its tool-parser registry reads calls out of free text for "auto" (`--tool-call-parser`).

A `ToolCalling` holds one request's choice; each choice of the answer gets a `ToolCallStream` that turns its text
deltas into OpenAI's content and `tool_calls` deltas and remembers the message they add up to."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from pydantic import BaseModel, ValidationError
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest as VllmChatRequest
from vllm.exceptions import VLLMValidationError
from vllm.sampling_params import StructuredOutputsParams
from vllm.tool_parsers import ToolParser, ToolParserManager
from vllm.tool_parsers.utils import get_json_schema_from_tools

from server.core.failures import Invalid
from server.core.ids import new_id
from server.core.schema import ChatTool, ChatToolChoice, DeltaFunctionCall, DeltaToolCall, FunctionCall, ToolCall

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


def tool_calling(tools: Sequence[ChatTool] | None, tool_choice: ChatToolChoice | None,
                 parallel_tool_calls: bool | None, parser_name: str | None, tokenizer: Any) -> ToolCalling | None:
    """A request's tool calling, checked by vLLM's own request model; None when it asks for no call."""
    if not tools or tool_choice == "none":
        return None
    fields = {"tools": [tool.model_dump(exclude_none=True) for tool in tools],
              "tool_choice": tool_choice.model_dump() if isinstance(tool_choice, BaseModel) else tool_choice,
              "parallel_tool_calls": parallel_tool_calls}
    try:
        request = VllmChatRequest.model_validate(
            {"model": "lima", "messages": [], **{k: v for k, v in fields.items() if v is not None}})
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
    """One choice's text turned, piece by piece, into content and OpenAI's `tool_calls` deltas. What was sent is
    remembered, so the whole message (`content`, `calls`) is exactly what a streaming client put together, and a
    stored call has the id the client saw."""

    calling: ToolCalling
    parser: ToolParser | None
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    call_id: str = field(default_factory=lambda: new_id("call_"))  # a named function's call
    content: str = ""  # sent so far
    calls: list[ToolCall] = field(default_factory=list)  # sent so far, by index

    def delta(self, text: str, token_ids: Sequence[int], finish_reason: str | None
              ) -> tuple[str, list[DeltaToolCall] | None, str | None]:
        """(content, tool call pieces, finish reason) to send for this piece of the answer. OpenAI's finish
        reason is "tool_calls" when the model called (a named function's answer ends as "stop", as OpenAI's)."""
        content, calls = self._delta(text, token_ids)
        self._remember(content, calls)
        if finish_reason is not None:
            more_content, more_calls = self._complete()
            self._remember(more_content, more_calls)
            content, calls = content + more_content, [*calls, *more_calls]
        if finish_reason == "stop" and self.calls and self.calling.mode != "named":
            finish_reason = "tool_calls"
        return content, calls or None, finish_reason

    def _delta(self, text: str, token_ids: Sequence[int]) -> tuple[str, list[DeltaToolCall]]:
        previous_text, previous_ids = self.text, list(self.token_ids)
        self.text += text
        self.token_ids += token_ids
        mode = self.calling.mode
        if mode == "named":  # the answer is the arguments, as they come
            if not text:
                return "", []
            first = not previous_text
            name = self.calling.request.tool_choice.function.name if first else None  # type: ignore[union-attr]
            return "", [DeltaToolCall(index=0, id=self.call_id if first else None, type="function" if first else None,
                                      function=DeltaFunctionCall(name=name, arguments=text))]
        if mode == "required":  # a JSON list of calls: sent whole when it is complete (see `_complete`)
            return "", []
        assert self.parser is not None
        message = self.parser.extract_tool_calls_streaming(
            previous_text, self.text, text, previous_ids, self.token_ids, list(token_ids), self.calling.request)
        if message is None:
            return "", []
        calls = [DeltaToolCall.model_validate(call.model_dump(exclude_none=True)) for call in message.tool_calls]
        return message.content or "", calls

    def _complete(self) -> tuple[str, list[DeltaToolCall]]:
        """What is left to send when the answer ends: a "required" answer's calls, whole (or its text, if
        max_tokens cut it before the list closed); the arguments a streaming parser held back."""
        if self.calling.mode == "required":
            try:
                found = [(c["name"], json.dumps(c["parameters"])) for c in json.loads(self.text)]
            except (ValueError, KeyError, TypeError):
                return self.text, []
            return "", [DeltaToolCall(index=index, id=new_id("call_"), type="function",
                                      function=DeltaFunctionCall(name=name, arguments=arguments))
                        for index, (name, arguments) in enumerate(found)]
        if self.parser is not None and self.calls and (rest := self.parser.get_remaining_unstreamed_args()):
            # As vLLM's own server does: the last call's arguments the parser read but had not sent yet.
            return "", [DeltaToolCall(index=len(self.calls) - 1, function=DeltaFunctionCall(arguments=rest))]
        return "", []

    def _remember(self, content: str, calls: Sequence[DeltaToolCall]) -> None:
        self.content += content
        for piece in calls:
            function = piece.function or DeltaFunctionCall()
            if piece.index == len(self.calls):
                self.calls.append(ToolCall(id=piece.id or new_id("call_"), function=FunctionCall(
                    name=function.name or "", arguments=function.arguments or "")))
            else:
                self.calls[piece.index].function.arguments += function.arguments or ""
