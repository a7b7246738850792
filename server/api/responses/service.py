"""One Responses API request, owned from the validated body to the turn that streams and is stored: the model and
tools it names, the history it continues (a conversation or a previous_response_id chain), its prompt, the
generation, and the response object the turn completes."""

from collections.abc import Sequence
from dataclasses import dataclass

from model_prep.chat_format import Message
from server.api.responses.protocol import ResponseRequest
from server.core.engine.admission import Admission
from server.core.engine.generation import resolve_model, start_generation
from server.core.engine.tools import tool_calling
from server.core.engine.wrapper import ChatEngine
from server.core.failures import Invalid
from server.core.history.items import ConversationRef, FunctionCallItem, FunctionCallOutputItem, Item, TextParam
from server.core.history.objects import ResponseObject
from server.core.history.store import HistoryStore
from server.core.ids import RESPONSE
from server.core.prompt import fit_prompt, reserve_for_output, stored_items, template_messages
from server.core.settings import ServerSettings
from server.core.turns import Turn

ROUTE = "/v1/responses"


def check_call_outputs(history: Sequence[Item], input_items: Sequence[Item]) -> None:
    """Each function_call_output answers a call made earlier (OpenAI's check, words and param)."""
    calls = {item.call_id for item in [*history, *input_items] if isinstance(item, FunctionCallItem)}
    for item in input_items:
        if isinstance(item, FunctionCallOutputItem) and item.call_id not in calls:
            raise Invalid(f"No tool call found for function call output with call_id {item.call_id}.", param="input")



@dataclass
class ResponsesService:
    engine: ChatEngine
    settings: ServerSettings
    admission: Admission
    store: HistoryStore | None  # given when the request stores or continues anything
    user: str

    async def start(self, body: ResponseRequest) -> tuple[Turn, ResponseObject]:
        """The turn, and the response object as it begins (no output yet)."""
        engine = self.engine
        model = resolve_model(body.model, engine)
        tools = tool_calling(body.chat_tools, body.chat_tool_choice, body.parallel_tool_calls,
                             self.settings.auto_tool_parser, engine.tokenizer)
        definitions = [tool.model_dump(exclude_none=True) for tool in body.chat_tools or []] or None
        conversation_id = body.conversation_id
        history = await stored_items(self.store, self.user, conversation_id, body.previous_response_id) \
            if self.store else []
        instructions = [Message(role="system", content=body.instructions)] if body.instructions else []
        input_items = body.input_items(lambda text: len(engine.tokenizer.encode(text, add_special_tokens=False)))
        check_call_outputs(history, input_items)
        fitted = fit_prompt(
            engine, [*instructions, *template_messages(history)], template_messages(input_items),
            reserve_for_output(engine, body.max_tokens), truncate=body.truncation == "auto", prompt_param="input",
            tools=definitions,
        )
        generation = start_generation(body, engine, model, ROUTE, RESPONSE, fitted.ids, "input",
                                      self.settings.max_choices, self.admission, tools, self.settings.loop_guard)
        response = ResponseObject(
            id=generation.request_id, model=model, instructions=body.instructions,
            previous_response_id=body.previous_response_id,
            conversation=ConversationRef(id=conversation_id) if conversation_id else None,
            max_output_tokens=body.max_output_tokens, temperature=generation.params.temperature,
            top_p=generation.params.top_p, top_logprobs=body.top_logprobs, truncation=body.truncation,
            store=body.store, metadata=body.metadata or {}, user=body.user, text=body.text or TextParam(),
            dropped_turns=fitted.dropped_turns, tools=body.tools or [], tool_choice=body.tool_choice or "auto",
            parallel_tool_calls=body.parallel_tool_calls is not False,
        )
        turn = Turn(generation, self.store, self.user, conversation_id, input_items, response=response,
                    store_response=body.store, tools=tools)
        return turn, response
