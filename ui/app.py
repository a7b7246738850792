"""The Gradio chat page: conversations in a sidebar, a streaming chat, settings. Every action goes through
`ui.client.ChatClient`, i.e. the server's public API, so the page works against a local or a remote server."""

from collections.abc import AsyncIterator
from typing import Any, cast

import gradio as gr

from ui.client import ChatClient, ConversationSummary, Settings, UIError

History = list[dict[str, str]]
WARNING = "⚠️ "
TITLE_CHARS = 80  # the sidebar cuts titles to its width with an ellipsis; this only bounds what is sent
# A chat answer's length: LIMA's answers run to a few hundred tokens; longer is a loop or a rambling model,
# which a page would otherwise stream for minutes (half the context of the embedded model is 4096 tokens).
CHAT_MAX_TOKENS = 1024
# The page stops an answer once it has written one sentence this many times (the API's guard is off by default).
PAGE_LOOP_GUARD = 3
# The conversation list as a chat app's sidebar: one row per conversation, newest first (the server's order),
# each title on one line cut with an ellipsis, instead of Gradio's wrapping radio chips.
CSS = """
#conversations .wrap { flex-direction: column; flex-wrap: nowrap; gap: 2px; }
#conversations label { display: flex; width: 100%; min-width: 0; max-width: 100%; box-sizing: border-box; }
#conversations label > span { min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#conversations label input { flex: none; }
"""


def conversation_choices(conversations: list[ConversationSummary]) -> list[tuple[str, str]]:
    return [(c.title if len(c.title) <= TITLE_CHARS else c.title[: TITLE_CHARS - 1] + "…", c.id)
            for c in conversations]


def settings_of(model: str | None, system_prompt: str, temperature: float | None, top_p: float | None,
                max_tokens: float | None, repetition_penalty: float | None, loop_guard: float | None) -> Settings:
    return Settings(model=model or None, system_prompt=system_prompt or "", temperature=temperature, top_p=top_p,
                    max_tokens=int(max_tokens) if max_tokens else None, repetition_penalty=repetition_penalty,
                    loop_guard=int(loop_guard) if loop_guard is not None else None)


def answering_buttons(busy: bool) -> tuple[Any, ...]:
    """Send, Regenerate and Edit while an answer streams: off, so that nothing is sent into (or taken back from)
    a turn that is still being written; Enter does nothing either, and the text stays in the box."""
    return (gr.update(interactive=not busy),) * 3


def build_ui(server_url: str, api_key: str | None = None) -> gr.Blocks:
    def client(key: str) -> ChatClient:
        return ChatClient(server_url, key or api_key)

    def warning(history: History, exc: UIError) -> History:
        return [*history, {"role": "assistant", "content": f"{WARNING}{exc}"}]

    async def refresh_list(key: str, selected: str | None) -> Any:
        try:
            async with client(key) as chat:
                return gr.update(choices=conversation_choices(await chat.conversations()), value=selected)
        except UIError:
            return gr.update()

    async def on_load(key: str) -> tuple[Any, ...]:
        """Models and their defaults into the settings, the user's conversations into the sidebar."""
        try:
            async with client(key) as chat:
                models = await chat.models()
                conversations = await chat.conversations()
        except UIError as exc:
            return (gr.update(),) * 6 + (f"{WARNING}{exc}",)
        defaults = models[0].defaults if models else {}
        context = models[0].max_model_len if models else 2048
        return (
            gr.update(choices=[m.id for m in models], value=models[0].id if models else None),
            gr.update(value=defaults.get("temperature", 1.0)),
            gr.update(value=defaults.get("top_p", 1.0)),
            # The model's default answer length, at most a chat answer's and half the context.
            gr.update(value=min(defaults.get("max_tokens") or context, context // 2, CHAT_MAX_TOKENS)),
            gr.update(value=defaults.get("repetition_penalty", 1.0)),
            gr.update(choices=conversation_choices(conversations), value=None),
            "",
        )

    async def answer(chat: ChatClient, conversation_id: str, text: str, history: History,
                     settings: Settings) -> AsyncIterator[History]:
        history = [*history, {"role": "user", "content": text}, {"role": "assistant", "content": ""}]
        yield history
        try:
            async for partial in chat.stream_reply(conversation_id, text, settings):
                history[-1] = {"role": "assistant", "content": partial}
                yield history
        except UIError as exc:
            yield warning(history[:-1], exc)

    async def send(text: str, conversation_id: str | None, history: History, key: str,
                   *setting_values: Any) -> AsyncIterator[tuple[Any, ...]]:
        """The message into the conversation and its answer streamed; the box is emptied once, when the message
        is taken, so what is typed meanwhile stays there."""
        if not text.strip():
            yield history, text, conversation_id, *answering_buttons(False)
            return
        async with client(key) as chat:
            try:
                conversation_id = conversation_id or await chat.new_conversation()
            except UIError as exc:
                yield warning(history, exc), text, conversation_id, *answering_buttons(False)
                return
            box: Any = ""
            async for shown in answer(chat, conversation_id, text, history, settings_of(*setting_values)):
                yield shown, box, conversation_id, *answering_buttons(True)
                box = gr.update()
            yield gr.update(), box, conversation_id, *answering_buttons(False)

    async def regenerate(conversation_id: str | None, history: History, key: str,
                         *setting_values: Any) -> AsyncIterator[tuple[Any, ...]]:
        if not conversation_id:
            yield history, *answering_buttons(False)
            return
        async with client(key) as chat:
            try:
                text = await chat.take_back_last_turn(conversation_id)
                remaining = await chat.messages(conversation_id)
            except UIError as exc:
                yield warning(history, exc), *answering_buttons(False)
                return
            if text is None:
                yield remaining, *answering_buttons(False)
                return
            async for shown in answer(chat, conversation_id, text, remaining, settings_of(*setting_values)):
                yield shown, *answering_buttons(True)
            yield gr.update(), *answering_buttons(False)

    async def edit_last(conversation_id: str | None, history: History, key: str) -> tuple[History, str]:
        """Take the last user message (and its answer) back into the input box, to be changed and resent."""
        if not conversation_id:
            return history, ""
        try:
            async with client(key) as chat:
                text = await chat.take_back_last_turn(conversation_id)
                return await chat.messages(conversation_id), text or ""
        except UIError as exc:
            return warning(history, exc), ""

    async def open_conversation(conversation_id: str | None, key: str) -> tuple[History, str, str]:
        if not conversation_id:
            return [], "", ""
        try:
            async with client(key) as chat:
                titles = {c.id: c.title for c in await chat.conversations()}
                return await chat.messages(conversation_id), conversation_id, titles.get(conversation_id, "")
        except UIError as exc:
            return warning([], exc), conversation_id, ""

    async def rename(conversation_id: str | None, title: str, key: str) -> Any:
        if conversation_id and title.strip():
            try:
                async with client(key) as chat:
                    await chat.rename(conversation_id, title.strip())
            except UIError as exc:
                gr.Warning(str(exc))
        return await refresh_list(key, conversation_id)

    async def delete(conversation_id: str | None, key: str) -> tuple[History, str, str, Any]:
        if conversation_id:
            try:
                async with client(key) as chat:
                    await chat.delete(conversation_id)
            except UIError as exc:
                gr.Warning(str(exc))
        return [], "", "", await refresh_list(key, None)

    with gr.Blocks(title="LIMA chat") as demo:
        # The open conversation's id lives in the page, not in server-side state: "New chat" clears it in the
        # browser at once, so a message sent right after it cannot reach the previous conversation.
        conversation = gr.Textbox(visible="hidden", elem_id="conversation-id")
        with gr.Sidebar(label="Conversations", open=True):
            new_chat = gr.Button("New chat", elem_id="new-chat", variant="primary")
            conversations = gr.Radio(label="Conversations", choices=[], elem_id="conversations")
            title = gr.Textbox(label="Title", elem_id="title")
            with gr.Row():
                rename_button = gr.Button("Rename", elem_id="rename", size="sm")
                delete_button = gr.Button("Delete", elem_id="delete", variant="stop", size="sm")
        status = gr.Markdown(elem_id="status")
        chatbot = gr.Chatbot(elem_id="chat", buttons=["copy"], height=520, label="LIMA chat",
                             placeholder="Ask anything. Answers stream in; Stop aborts them on the server.")
        with gr.Row():
            # One line that grows to eight: Enter sends, Shift+Enter starts a new line (as in other chat apps).
            message = gr.Textbox(placeholder="Message (Enter sends, Shift+Enter for a new line)", elem_id="message",
                                 show_label=False, scale=8, lines=1, max_lines=8)
            send_button = gr.Button("Send", elem_id="send", variant="primary", scale=1)
            stop_button = gr.Button("Stop", elem_id="stop", scale=1)
        with gr.Row():
            regenerate_button = gr.Button("Regenerate", elem_id="regenerate", size="sm")
            edit_button = gr.Button("Edit last message", elem_id="edit", size="sm")
        with gr.Accordion("Settings", open=False, elem_id="settings"):
            key = gr.Textbox(label="API key (if the server requires one)", type="password", elem_id="api-key",
                             value=api_key or "")
            model = gr.Dropdown(label="Model", choices=[], elem_id="model")
            system_prompt = gr.Textbox(label="System prompt", lines=2, elem_id="system-prompt")
            temperature = gr.Slider(0.0, 2.0, step=0.05, label="Temperature")
            top_p = gr.Slider(0.05, 1.0, step=0.05, label="top_p")
            max_tokens = gr.Number(label="Max tokens", precision=0, minimum=1, elem_id="max-tokens")
            repetition_penalty = gr.Slider(1.0, 2.0, step=0.05, label="Repetition penalty")
            loop_guard = gr.Number(label="Stop an answer that repeats a sentence this many times (0: never)",
                                   value=PAGE_LOOP_GUARD, precision=0, minimum=0, maximum=100, elem_id="loop-guard")
        setting_inputs = [model, system_prompt, temperature, top_p, max_tokens, repetition_penalty, loop_guard]

        loaded = [model, temperature, top_p, max_tokens, repetition_penalty, conversations, status]
        demo.load(on_load, [key], loaded)
        for key_entered in (key.submit, key.blur):  # not on every keystroke
            key_entered(on_load, [key], loaded)
        buttons = [send_button, regenerate_button, edit_button]
        # One event for both triggers: while it runs, neither the button nor Enter starts another (Gradio's
        # trigger_mode "once"), and the buttons say so.
        sending = gr.on([send_button.click, message.submit], send, [message, conversation, chatbot, key,
                                                                     *setting_inputs],
                        [chatbot, message, conversation, *buttons], trigger_mode="once")
        sending.then(refresh_list, [key, conversation], [conversations])
        answering = [sending, regenerate_button.click(regenerate, [conversation, chatbot, key, *setting_inputs],
                                                      [chatbot, *buttons], trigger_mode="once")]
        # Cancelling closes the stream to the server, which aborts the generation and stores the partial answer.
        stop_button.click(lambda: answering_buttons(False), None, buttons, cancels=cast(Any, answering)).then(
            refresh_list, [key, conversation], [conversations])
        edit_button.click(edit_last, [conversation, chatbot, key], [chatbot, message])
        conversations.input(open_conversation, [conversations, key], [chatbot, conversation, title])
        new_chat.click(None, None, [chatbot, conversation, title, conversations], js="() => [[], '', '', null]")
        rename_button.click(rename, [conversation, title, key], [conversations])
        delete_button.click(delete, [conversation, key], [chatbot, conversation, title, conversations])
    demo.queue(default_concurrency_limit=64)
    return demo


def launch(server_url: str, host: str, port: int, api_key: str | None = None) -> None:
    # System fonts only: the page must not wait on a font CDN (closed networks, privacy).
    theme = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    build_ui(server_url, api_key).launch(server_name=host, server_port=port, show_error=True, quiet=True, theme=theme,
                                         css=CSS)
