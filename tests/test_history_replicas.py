"""Two server processes on one Redis: one conversation continued turn by turn on alternate replicas, and many
conversations written concurrently through both, with every turn stored once and in order."""

import asyncio
from pathlib import Path

import openai
from transformers import AutoTokenizer

from harness.live_server import LiveServer
from model_prep.chat_format import chat_token_ids
from tests.conftest import API_KEYS


def clients(replicas: tuple[LiveServer, LiveServer]) -> list[openai.OpenAI]:
    return [openai.OpenAI(base_url=f"{s.url}/v1", api_key=API_KEYS["alice"], max_retries=0) for s in replicas]


def test_replicas_continue_one_conversation_alternately(
    replicas: tuple[LiveServer, LiveServer], tiny_model_dir: Path
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    a, b = clients(replicas)
    conversation = a.conversations.create()
    messages = []
    previous = None
    for turn in range(6):
        client = (a, b)[turn % 2]
        reply = client.responses.create(
            model="tiny", conversation=conversation.id, input=f"turn {turn}", max_output_tokens=4, temperature=0
        )
        messages.append({"role": "user", "content": f"turn {turn}"})
        # Each replica saw every turn the other stored: the prompt is the whole conversation so far.
        assert reply.usage.input_tokens == len(chat_token_ids(tokenizer, messages))
        messages.append({"role": "assistant", "content": reply.output_text})
        previous = reply
    stored = [(i.role, i.content[0].text) for i in b.conversations.items.list(conversation.id, order="asc", limit=100)]
    assert stored == [(m["role"], m["content"]) for m in messages]
    assert a.responses.retrieve(previous.id).output_text == previous.output_text


def test_concurrent_turns_on_32_conversations(replicas: tuple[LiveServer, LiveServer]) -> None:
    async def run() -> None:
        clients = [openai.AsyncOpenAI(base_url=f"{s.url}/v1", api_key=API_KEYS["alice"], max_retries=0)
                   for s in replicas]
        conversations = await asyncio.gather(*(clients[0].conversations.create() for _ in range(32)))

        async def three_turns(index: int, conversation_id: str) -> None:
            for turn in range(3):
                client = clients[(index + turn) % 2]
                reply = await client.responses.create(
                    model="tiny", conversation=conversation_id, input=f"c{index} t{turn}", max_output_tokens=3,
                    stream=turn == 1,
                )
                if turn == 1:
                    async for _ in reply:  # the turn is stored before the stream's last event
                        pass

        results = await asyncio.gather(
            *(three_turns(i, c.id) for i, c in enumerate(conversations)), return_exceptions=True
        )
        assert [r for r in results if isinstance(r, BaseException)] == []
        for index, conversation in enumerate(conversations):
            items = [item async for item in clients[1].conversations.items.list(conversation.id, order="asc")]
            assert [item.role for item in items] == ["user", "assistant"] * 3
            assert [item.content[0].text for item in items[::2]] == [f"c{index} t{turn}" for turn in range(3)]
            assert len({item.id for item in items}) == 6

    asyncio.run(run())
