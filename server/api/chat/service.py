"""One chat completion request, owned from the validated body to the turn that streams and is stored: the model
and tools it names, its prompt (after the stored conversation when it continues one), the generation."""

from dataclasses import dataclass

from server.api.chat.protocol import ChatCompletionRequest
from server.api.protocol import ChatMessage
from server.core.engine.admission import Admission
from server.core.engine.generation import resolve_model, start_generation
from server.core.engine.tools import tool_calling
from server.core.engine.wrapper import ChatEngine
from server.core.history.items import FunctionCallItem, FunctionCallOutputItem, Item, MessageItem
from server.core.history.store import HistoryStore
from server.core.prompt import fit_prompt, reserve_for_output, stored_items, template_messages
from server.core.settings import ServerSettings
from server.core.turns import Turn

ROUTE = "/v1/chat/completions"


def chat_items(message: ChatMessage) -> list[Item]:
    """A chat message as the items a conversation keeps: a tool's answer is a function_call_output; an assistant's
    calls are function_call items after its text (if it has any)."""
    if message.role == "tool":
        assert message.tool_call_id is not None  # the request's check
        return [FunctionCallOutputItem(call_id=message.tool_call_id, output=message.text())]
    calls = message.tool_calls or []
    items: list[Item] = [MessageItem.of(message.role, message.text())] if message.text() or not calls else []
    return [*items, *(FunctionCallItem(call_id=call.id, name=call.function.name, arguments=call.function.arguments)
                      for call in calls)]


@dataclass
class ChatTurn:
    turn: Turn
    model: str  # the served name the request asked for
    dropped_turns: int | None  # None for stateless chat (nothing stored to drop)


@dataclass
class ChatService:
    engine: ChatEngine
    settings: ServerSettings
    admission: Admission
    store: HistoryStore | None  # given when the request continues a conversation
    user: str

    async def start(self, body: ChatCompletionRequest) -> ChatTurn:
        model = resolve_model(body.model, self.engine)
        tools = tool_calling(body.tools, body.tool_choice, body.parallel_tool_calls, self.settings.auto_tool_parser,
                             self.engine.tokenizer)
        definitions = [tool.model_dump(exclude_none=True) for tool in body.tools] if body.tools else None
        history = None
        if self.store is not None:
            history = template_messages(await stored_items(self.store, self.user, body.conversation, None))
        prompt = fit_prompt(self.engine, history, [message.as_template_message() for message in body.messages],
                            reserve_for_output(self.engine, body.max_tokens), truncate=True, prompt_param="messages",
                            tools=definitions)
        generation = start_generation(body, self.engine, model, ROUTE, "chatcmpl-", prompt.ids, "messages",
                                      self.settings.max_choices, self.admission, tools, self.settings.loop_guard)
        input_items = [item for message in body.messages for item in chat_items(message)] if self.store else []
        turn = Turn(generation, self.store, self.user, body.conversation, input_items, tools=tools)
        return ChatTurn(turn, model, prompt.dropped_turns if self.store else None)
