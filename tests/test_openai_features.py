"""OpenAI features a user of vLLM's own server relies on, through the official `openai` client against a live
server (real engine, tiny model): logprobs, tokenize, prefix-cache accounting, and no silently ignored field."""

import math
from pathlib import Path

import httpx
import openai
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from harness.live_server import LiveServer
from model_prep.chat_format import chat_token_ids
from tests.conftest import TINY_DTYPE
from tests.metrics_scrape import scrape, total

QUESTION = [{"role": "user", "content": "The capital of France?"}]
# The served logprobs against the same model's in transformers (float32): equal up to the serving dtype's rounding.
TOLERANCE = 2e-3 if TINY_DTYPE == "float32" else 0.15


@pytest.fixture
def client(tiny_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{tiny_server.url}/v1", api_key="unused", max_retries=0)


def reference_logprobs(model_dir: Path, prompt_ids: list[int]) -> torch.Tensor:
    """The next token's log-probabilities after `prompt_ids`, computed by transformers in float32."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids])).logits[0, -1]
    return torch.log_softmax(logits, dim=-1)


def test_chat_logprobs_are_the_models_own(client: openai.OpenAI, tiny_server: LiveServer,
                                          tiny_model_dir: Path) -> None:
    # Logprobs are the model's own (vLLM's raw_logprobs), before penalties: without the checkpoint's repetition
    # penalty, greedy decoding picks the most likely of them.
    plain = {"temperature": 0, "extra_body": {"repetition_penalty": 1.0}}
    reply = client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=8, logprobs=True,
                                           top_logprobs=3, **plain)
    tokens = reply.choices[0].logprobs.content
    assert len(tokens) == reply.usage.completion_tokens
    for token in tokens:  # greedy: the chosen token is the most likely one
        assert len(token.top_logprobs) == 3 and token.top_logprobs[0].token == token.token
        assert token.logprob == max(top.logprob for top in token.top_logprobs) <= 0
        assert bytes(token.bytes).decode() == token.token

    prompt = httpx.post(f"{tiny_server.url}/tokenize", json={"messages": QUESTION}, timeout=30).json()["tokens"]
    expected = reference_logprobs(tiny_model_dir, prompt).topk(3).values.tolist()
    served = [top.logprob for top in tokens[0].top_logprobs]
    assert all(math.isclose(a, b, abs_tol=TOLERANCE) for a, b in zip(served, expected, strict=True)), (
        served, expected)

    stream = client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=8, logprobs=True,
                                            top_logprobs=3, stream=True, **plain)
    streamed = [token for chunk in stream if chunk.choices and chunk.choices[0].logprobs
                for token in chunk.choices[0].logprobs.content]
    assert [t.token for t in streamed] == [t.token for t in tokens]
    assert all(math.isclose(a.logprob, b.logprob, abs_tol=1e-4) for a, b in zip(streamed, tokens, strict=True))


def test_completion_logprobs_with_echo(client: openai.OpenAI) -> None:
    prompt = "The capital of France is"
    reply = client.completions.create(model="tiny", prompt=prompt, max_tokens=5, temperature=0, logprobs=2,
                                      echo=True, extra_body={"repetition_penalty": 1.0})
    choice = reply.choices[0]
    assert choice.text.startswith(prompt)
    logprobs = choice.logprobs
    assert len(logprobs.tokens) == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None  # no context for the first
    assert all(value <= 0 for value in logprobs.token_logprobs[1:])
    assert logprobs.text_offset == [sum(map(len, logprobs.tokens[:i])) for i in range(len(logprobs.tokens))]
    generated = slice(reply.usage.prompt_tokens, None)
    assert "".join(logprobs.tokens[:reply.usage.prompt_tokens]) == prompt  # the echoed prompt's own tokens
    for token, top in zip(logprobs.tokens[generated], logprobs.top_logprobs[generated], strict=True):
        assert len(top) == 2 and max(top, key=top.get) == token  # greedy


def test_responses_logprobs_in_the_output_and_the_stream(client: openai.OpenAI) -> None:
    include = ["message.output_text.logprobs"]
    reply = client.responses.create(model="tiny", input="Hello", max_output_tokens=6, temperature=0,
                                    top_logprobs=2, include=include, store=False)
    logprobs = reply.output[0].content[0].logprobs
    assert len(logprobs) == reply.usage.output_tokens and all(len(t.top_logprobs) == 2 for t in logprobs)
    events = list(client.responses.create(model="tiny", input="Hello", max_output_tokens=6, temperature=0,
                                          top_logprobs=2, include=include, store=False, stream=True))
    deltas = [entry for event in events if event.type == "response.output_text.delta" for entry in event.logprobs]
    assert [t.token for t in deltas] == [t.token for t in logprobs]
    plain = client.responses.create(model="tiny", input="Hello", max_output_tokens=6, store=False)
    assert plain.output[0].content[0].logprobs is None  # only when asked for


@pytest.mark.parametrize(("route", "body", "param"), [
    ("/v1/chat/completions", {"messages": QUESTION, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ("/v1/chat/completions", {"messages": QUESTION, "top_logprobs": 2}, None),  # needs logprobs: true
    ("/v1/completions", {"prompt": "x", "logprobs": 21}, "logprobs"),
    ("/v1/responses", {"input": "x", "top_logprobs": -1}, "top_logprobs"),
    ("/v1/responses", {"input": "x", "include": ["file_search_call.results"]}, "include[0]"),
])
def test_out_of_range_logprobs_are_a_400_naming_the_field(
    tiny_server: LiveServer, route: str, body: dict, param: str | None
) -> None:
    reply = httpx.post(f"{tiny_server.url}{route}", json={"model": "tiny", **body}, timeout=30)
    assert reply.status_code == 400 and reply.json()["error"]["param"] == param, reply.text


@pytest.mark.parametrize(("route", "field", "value"), [
    ("/v1/chat/completions", "audio", {"voice": "alloy", "format": "wav"}),
    ("/v1/chat/completions", "prediction", {"type": "content", "content": "x"}),
    ("/v1/chat/completions", "functions", [{"name": "f"}]),
    ("/v1/completions", "suffix", " the end"),
    ("/v1/completions", "tools", [{"type": "function", "function": {"name": "f"}}]),
    ("/v1/responses", "reasoning", {"effort": "high"}),
    ("/v1/responses", "background", True),
])
def test_fields_the_server_cannot_honour_are_refused_by_name(
    tiny_server: LiveServer, route: str, field: str, value: object
) -> None:
    prompt = {"/v1/chat/completions": {"messages": QUESTION}, "/v1/completions": {"prompt": "x"},
              "/v1/responses": {"input": "x"}}[route]
    reply = httpx.post(f"{tiny_server.url}{route}", json={"model": "tiny", **prompt, field: value}, timeout=30)
    error = reply.json()["error"]
    assert reply.status_code == 400 and (error["param"], error["code"]) == (field, "unsupported_parameter")
    assert f"'{field}'" in error["message"]


def test_hints_are_accepted_and_unknown_fields_ignored_and_counted(
    client: openai.OpenAI, tiny_server: LiveServer
) -> None:
    before = total(scrape(tiny_server.url), "lima_ignored_request_fields_total", route="/v1/chat/completions")
    reply = client.chat.completions.create(
        model="tiny", messages=QUESTION, max_tokens=3, service_tier="auto", prompt_cache_key="k",
        safety_identifier="u1", metadata={"a": "b"}, store=False, user="u", tool_choice="none",
        parallel_tool_calls=False, extra_body={"not_an_openai_field": 1, "another_one": "x"})
    assert reply.choices[0].message.content is not None
    after = total(scrape(tiny_server.url), "lima_ignored_request_fields_total", route="/v1/chat/completions")
    assert after - before == 2


def test_logit_bias_and_vllm_sampling_extras_are_honoured(client: openai.OpenAI, tiny_server: LiveServer) -> None:
    def first_token(**fields: object) -> str:
        reply = client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=1, **fields)
        return reply.choices[0].message.content

    greedy = first_token(temperature=0)
    ids = httpx.post(f"{tiny_server.url}/tokenize", timeout=30,
                     json={"prompt": "Paris Rome sea", "add_special_tokens": False}).json()["tokens"]
    texts = [httpx.post(f"{tiny_server.url}/detokenize", json={"tokens": [i]}, timeout=30).json()["prompt"]
             for i in ids]
    chosen, text = next((i, t) for i, t in zip(ids, texts, strict=True) if t != greedy)
    assert first_token(temperature=0, logit_bias={str(chosen): 100}) == text
    # vLLM's top_k and min_p: with either at its narrowest, sampling at temperature 1 is greedy whatever the seed.
    for seed in (1, 2, 3):
        assert first_token(temperature=1.0, seed=seed, extra_body={"top_k": 1}) == greedy
        assert first_token(temperature=1.0, seed=seed, extra_body={"min_p": 1.0}) == greedy


def test_tokenize_renders_the_chat_format_and_detokenize_inverts(tiny_server: LiveServer,
                                                                 tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [{"role": "system", "content": "Be terse."}, *QUESTION]
    for add_generation_prompt in (True, False):
        reply = httpx.post(f"{tiny_server.url}/tokenize", timeout=30, json={
            "model": "tiny", "messages": messages, "add_generation_prompt": add_generation_prompt,
            "return_token_strs": True}).json()
        assert reply["tokens"] == chat_token_ids(tokenizer, messages, add_generation_prompt)
        assert reply["count"] == len(reply["tokens"]) == len(reply["token_strs"]) and reply["max_model_len"] > 0
    text = httpx.post(f"{tiny_server.url}/tokenize", json={"prompt": "The capital"}, timeout=30).json()["tokens"]
    back = httpx.post(f"{tiny_server.url}/detokenize", json={"tokens": text}, timeout=30).json()
    assert back == {"prompt": "The capital"}
    for body, param in (({"tokens": [10**9]}, "tokens"), ({"prompt": "x", "messages": QUESTION}, None),
                        ({"prompt": "x", "model": "nope"}, "model")):
        path = "/detokenize" if "tokens" in body else "/tokenize"
        error = httpx.post(f"{tiny_server.url}{path}", json=body, timeout=30)
        assert error.status_code in (400, 404) and error.json()["error"]["param"] == param, error.text


def test_cached_prompt_tokens_are_reported(client: openai.OpenAI, tiny_server: LiveServer) -> None:
    """Turn 2 of a stored conversation: its first turn's tokens come from vLLM's prefix cache, and usage says so."""
    long_question = "Tell me about the capital of France and the capital of Italy. " * 12  # ~220 tokens
    conversation = client.conversations.create()
    first = client.responses.create(model="tiny", conversation=conversation.id, input=long_question,
                                    max_output_tokens=4, temperature=0)
    second = client.responses.create(model="tiny", conversation=conversation.id, input="And Spain?",
                                     max_output_tokens=4, temperature=0)
    cached = second.usage.input_tokens_details.cached_tokens
    # vLLM caches whole KV blocks (128 tokens on the CPU): every full block of turn 1's tokens is reused.
    assert 0 < cached <= first.usage.total_tokens and cached < second.usage.input_tokens, (first.usage, second.usage)
    chat = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": long_question}],
                                          max_tokens=2)
    assert chat.usage.prompt_tokens_details.cached_tokens > 0
    metrics = scrape(tiny_server.url)
    assert total(metrics, "lima_prompt_cached_tokens_total") >= cached + chat.usage.prompt_tokens_details.cached_tokens
