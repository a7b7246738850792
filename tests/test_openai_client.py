"""The official openai client against a live server (real vLLM engine, tiny Llama built by the test)."""

import httpx
import openai
import pytest

from harness.live_server import LiveServer


@pytest.fixture
def client(tiny_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{tiny_server.url}/v1", api_key="unused", max_retries=0)


MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "The capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
]


def test_models_lists_served_name_and_lima_decoding(client: openai.OpenAI) -> None:
    (card,) = client.models.list().data
    assert card.id == "tiny"
    assert card.model_extra["default_sampling"] == {
        "repetition_penalty": 1.2, "temperature": 0.7, "top_p": 0.9, "max_tokens": 2048
    }


def test_chat_completion_non_streaming(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=12, temperature=0)
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens <= 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streaming_matches_non_streaming_and_reports_usage(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=16, temperature=0)
    stream = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=16, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stream_ends_with_done_marker(tiny_server: LiveServer) -> None:
    body = {"messages": MESSAGES, "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{tiny_server.url}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        data = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "data: [DONE]"


def test_n_choices_streamed_and_whole(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=6, n=3, seed=1)
    assert sorted(c.index for c in reply.choices) == [0, 1, 2]
    stream = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=6, n=2, stream=True)
    assert {c.choices[0].index for c in stream if c.choices} == {0, 1}


def test_max_completion_tokens_and_stop_are_honoured(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_completion_tokens=3, temperature=0, extra_body={"ignore_eos": True}
    )
    assert reply.usage.completion_tokens == 3 and reply.choices[0].finish_reason == "length"
    free = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=20, temperature=0)
    stop_at = free.choices[0].message.content[3:6]
    stopped = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=20, temperature=0, stop=[stop_at]
    )
    assert stop_at not in stopped.choices[0].message.content
    assert stopped.choices[0].finish_reason == "stop"


def test_seed_makes_sampling_repeatable(client: openai.OpenAI) -> None:
    def sample(seed: int) -> str:
        return client.chat.completions.create(
            model="tiny", messages=MESSAGES, max_tokens=16, temperature=1.0, seed=seed,
            extra_body={"repetition_penalty": 1.0},
        ).choices[0].message.content

    assert sample(7) == sample(7)
    assert len({sample(s) for s in range(5)}) > 1


def test_penalties_and_user_are_accepted(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=5, presence_penalty=0.5, frequency_penalty=0.5, top_p=0.5,
        user="alice", extra_body={"repetition_penalty": 1.3},
    )
    assert reply.choices[0].message.content is not None


def test_text_completion_streaming_and_not(client: openai.OpenAI) -> None:
    whole = client.completions.create(model="tiny", prompt="The capital of", max_tokens=8, temperature=0)
    assert whole.object == "text_completion" and whole.usage.completion_tokens <= 8
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model="tiny", prompt="The capital of", max_tokens=8, temperature=0, stream=True
        )
        if c.choices
    )
    assert streamed == whole.choices[0].text
