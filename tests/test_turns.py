"""How a turn ends up in the store, without an engine process: the real `Turn` and `Generation` code on a real
redis-server, fed by a scripted engine that yields vLLM's own output objects. (The live tests run the same path
against the real engine.)"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from vllm import SamplingParams
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.v1.engine.exceptions import EngineDeadError

from server.api.errors import as_api_error
from server.core.engine.generation import Generation
from server.core.failures import NotFound, Unavailable
from server.core.history.items import MessageItem
from server.core.history.objects import ResponseObject
from server.core.history.redis_server import RedisServer
from server.core.history.store import HistoryStore, connect
from server.core.ids import new_id
from server.core.turns import Turn, _background_saves


class ScriptedEngine:
    """Yields `pieces` one token each as vLLM RequestOutputs, the last with `finish_reason`; raises
    EngineDeadError after `die_after` pieces if given; records what was aborted."""

    def __init__(self, pieces: list[str], finish_reason: str = "stop", die_after: int | None = None) -> None:
        self.pieces, self.finish_reason, self.die_after = pieces, finish_reason, die_after
        self.aborted: list[str] = []

    async def generate(self, prompt_ids: list[int], params: SamplingParams, request_id: str, model: str
                       ) -> AsyncIterator[RequestOutput]:
        for i, piece in enumerate(self.pieces):
            if i == self.die_after:
                raise EngineDeadError()
            last = i == len(self.pieces) - 1
            choice = CompletionOutput(index=0, text=piece, token_ids=[i], cumulative_logprob=None, logprobs=None,
                                      finish_reason=self.finish_reason if last else None)
            yield RequestOutput(request_id, None, prompt_ids, None, [choice], finished=last)
            await asyncio.sleep(0)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)


Scenario = Callable[[HistoryStore], Awaitable[None]]


def in_store(shared_redis: RedisServer, scenario: Scenario) -> None:
    """Run `scenario` in one event loop with a store on the shared redis-server (its client is bound to the loop)."""
    async def run() -> None:
        store = HistoryStore(connect(shared_redis.url), ttl_seconds=3600, max_items=50)
        try:
            await scenario(store)
        finally:
            await store.client.aclose()

    asyncio.run(run())


async def new_turn(store: HistoryStore, engine: ScriptedEngine, response: ResponseObject | None = None
                   ) -> tuple[Turn, str]:
    conversation = new_id("conv_")
    await store.create_conversation("ivy", conversation, {}, [])
    generation = Generation(engine, "responses", new_id("resp_"), [1, 2, 3], SamplingParams(max_tokens=16),
                            release=lambda: None, model="scripted")
    return Turn(generation, store, "ivy", conversation, [MessageItem.of("user", "Hello?")], response), conversation


async def stored(store: HistoryStore, conversation: str) -> list[MessageItem]:
    return (await store.load("ivy", conversation)).items


def test_a_finished_answer_is_stored_whole_with_its_tokens(shared_redis: RedisServer) -> None:
    engine = ScriptedEngine(["Hi", " there", "."])

    async def scenario(store: HistoryStore) -> None:
        turn, conversation = await new_turn(store, engine)
        choices, _ = await turn.collect()
        assert choices[0].text == "Hi there." and choices[0].finish_reason == "stop"
        user, answer = await stored(store, conversation)
        assert user.role == "user" and user.text() == "Hello?"
        assert (answer.status, answer.finish_reason, answer.tokens) == ("completed", "stop", 3)
        assert answer.text() == "Hi there." and answer.response_id == turn.generation.request_id

    in_store(shared_redis, scenario)
    assert engine.aborted == []  # it finished: nothing to abort


def test_an_answer_cut_by_the_length_limit_is_incomplete(shared_redis: RedisServer) -> None:
    async def scenario(store: HistoryStore) -> None:
        turn, conversation = await new_turn(store, ScriptedEngine(["a", "b"], finish_reason="length"),
                                            response=ResponseObject(id="resp_x", model="m"))
        _, response = await turn.collect()
        assert response is not None and response.status == "incomplete"
        assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
        assert response.usage is not None and response.usage.output_tokens == 2 and response.completed_at is None
        answer = (await stored(store, conversation))[1]
        assert (answer.status, answer.finish_reason) == ("incomplete", "length")

    in_store(shared_redis, scenario)


def test_a_client_gone_mid_answer_leaves_the_partial_answer_marked_incomplete(shared_redis: RedisServer) -> None:
    engine = ScriptedEngine(["one", " two", " three", " four"])

    async def scenario(store: HistoryStore) -> None:
        turn, conversation = await new_turn(store, engine)
        deltas = turn.deltas()
        assert (await anext(deltas)).text == "one"
        assert (await anext(deltas)).text == " two"
        await deltas.aclose()  # what the server sees when the client disconnects mid-stream
        await asyncio.gather(*_background_saves)
        answer = (await stored(store, conversation))[1]
        assert (answer.status, answer.finish_reason, answer.tokens) == ("incomplete", None, 2)
        assert answer.text() == "one two"
        assert engine.aborted == [turn.generation.request_id]  # the engine stops generating for nobody

    in_store(shared_redis, scenario)


def test_an_engine_failure_stores_nothing_and_is_a_503(shared_redis: RedisServer) -> None:
    engine = ScriptedEngine(["one", " two", " three"], die_after=1)

    async def scenario(store: HistoryStore) -> None:
        turn, conversation = await new_turn(store, engine)
        with pytest.raises(Unavailable) as failed:
            await turn.collect()
        assert as_api_error(failed.value).status == 503 and failed.value.code == "engine_dead"
        assert await stored(store, conversation) == []  # the client was told it failed and may retry
        assert engine.aborted == [turn.generation.request_id]

    in_store(shared_redis, scenario)


def test_a_conversation_deleted_while_answering_is_a_404_and_nothing_is_written(shared_redis: RedisServer) -> None:
    async def scenario(store: HistoryStore) -> None:
        turn, conversation = await new_turn(store, ScriptedEngine(["late"]))
        await store.delete_conversation("ivy", conversation)
        with pytest.raises(NotFound) as failed:
            await turn.collect()
        assert as_api_error(failed.value).status == 404 and failed.value.code == "conversation_not_found"
        assert await store.load("ivy", conversation) is None

    in_store(shared_redis, scenario)
