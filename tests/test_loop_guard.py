"""The loop guard: which sentences count as the same, that it reads any text in linear time, and, live, that it
bounds what the embedded model writes and is off unless asked for."""

import time

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.live_server import LiveServer
from server.core.engine.loop_guard import LoopGuard, most_repeated, sentence_key
from tests.metrics_scrape import scrape, total
from tests.test_curation_linear import growth

LOOP = "Paris, la femme au martyre. "


def test_numbered_repeats_of_one_line_are_one_loop_and_short_sentences_do_not_count() -> None:
    assert sentence_key("3. Measure 1.5 ounces of coffee per serving") == sentence_key(
        "- measure 1.5 ounces of coffee  per serving!")
    assert sentence_key("Yes.") is None and sentence_key("Step 1.") is None
    assert most_repeated("1. Grind the beans.\n2. Grind the beans.\n3. Grind the beans.") == 3
    assert most_repeated("Yes. Yes. Yes. Yes.") == 0
    assert most_repeated("Use 1.5 cups. Then 1.5 more cups. Use 1.5 cups.") == 2  # "1.5" ends no sentence


@given(st.lists(st.integers(1, 12), min_size=1, max_size=40))
def test_the_guard_trips_on_the_sentence_that_completes_the_limit_however_the_text_is_cut(cuts: list[int]) -> None:
    text = "I like the sea. It is big and blue. " + LOOP * 3 + "more"
    limit_reached_at = text.index(LOOP) + len(LOOP) * 3  # the third "." and its space
    guard, fed, tripped_at = LoopGuard(3), 0, None
    pieces = iter(cuts * (len(text) // len(cuts) + 1))
    while fed < len(text) and tripped_at is None:
        piece = text[fed:fed + next(pieces)]
        fed += len(piece)
        if guard.feed(piece):
            tripped_at = fed
    assert tripped_at is not None and limit_reached_at - 1 <= tripped_at <= limit_reached_at + 11


ADVERSARIAL = st.lists(st.sampled_from([" ", "\n", ".", "!", "?", "1.", "- ", "a", "word ", "\t", "1.5", "…"]),
                       min_size=1, max_size=30)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ADVERSARIAL)
def test_the_guard_reads_any_text_in_linear_time(pieces: list[str]) -> None:
    unit = "".join(pieces)
    small, large = unit * (3000 // len(unit) + 1), unit * (24000 // len(unit) + 1)

    def streamed(text: str) -> None:  # as the engine sends it: a few characters at a time
        guard = LoopGuard(10**9)
        for start in range(0, len(text), 4):
            guard.feed(text[start:start + 4])

    for function in (streamed, most_repeated):
        assert growth(function, small, large) is None
    assert growth(streamed, " " * 3000, " " * 24000) is None and growth(streamed, "." * 3000, "." * 24000) is None


# A text that repeats itself: a language model continues it with the same sentence, by a wide margin.
REPEATING = "The sea is blue and calm. " * 6
EVERYDAY = ["How do I make a good cup of pour-over coffee? Give me the steps.", "What is the capital of France?",
            "Write a short story about a lighthouse keeper."]


@pytest.fixture
def client(default_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{default_server.url}/v1", api_key="unused", max_retries=0)


def test_the_guard_bounds_the_answers_and_is_off_unless_asked(client: openai.OpenAI,
                                                                default_server: LiveServer) -> None:
    stops_before = total(scrape(default_server.url), "lima_loop_guard_stops_total")
    for prompt in EVERYDAY:  # the page's settings: the model's decoding, its guard at 3, a chat answer's length
        reply = client.chat.completions.create(model="SmolLM2-135M-Instruct", seed=1, max_tokens=1024,
                                               messages=[{"role": "user", "content": prompt}],
                                               extra_body={"loop_guard": 3})
        assert most_repeated(reply.choices[0].message.content) <= 3, reply.choices[0].message.content
    plain = {"model": "SmolLM2-135M-Instruct", "prompt": REPEATING, "temperature": 0, "max_tokens": 120,
             "frequency_penalty": 0}
    free = client.completions.create(**plain)
    assert most_repeated(free.choices[0].text) > 3, free  # off by default, as in OpenAI's API
    guarded = client.completions.create(**plain, extra_body={"loop_guard": 3})
    assert most_repeated(guarded.choices[0].text) == 3 and guarded.choices[0].finish_reason == "stop", guarded
    assert guarded.usage.completion_tokens < free.usage.completion_tokens
    assert total(scrape(default_server.url), "lima_loop_guard_stops_total") > stops_before
    deadline = time.monotonic() + 10  # the engine was told to stop: nothing is left running
    while total(scrape(default_server.url), "vllm:num_requests_running") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert total(scrape(default_server.url), "vllm:num_requests_running") == 0
    bad = httpx.post(f"{default_server.url}/v1/chat/completions", timeout=30,
                     json={"messages": [{"role": "user", "content": "Hi"}], "loop_guard": -1})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "loop_guard"


def test_a_response_the_guard_ended_is_incomplete_for_repetition() -> None:
    from server.core.engine.generation import REPETITION
    from server.core.turns import response_status

    status, details = response_status(REPETITION, interrupted=False)
    assert status == "incomplete" and details is not None and details.reason == "repetition"
