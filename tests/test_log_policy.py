"""What the server logs, without an engine: paths without query strings, prompts only with --log-prompts (which
also turns vLLM's request log on), and a loud banner when it is on. The live check: tests/test_security_live.py."""

import logging
from pathlib import Path
from typing import Any

import pytest

from lima.cli.serve import not_a_probe
from server.api.app import build_app
from server.core.engine.args import build_engine_args
from server.core.engine.wrapper import ChatEngine
from server.core.settings import ServerSettings

CACHE = Path("/data/compile-cache")

pytestmark = pytest.mark.usefixtures("restored_environment")  # build_engine_args sets environment variables


def access_record(path: str) -> logging.LogRecord:
    """A record as uvicorn's access logger makes it: client, method, full path, HTTP version, status."""
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                             ("127.0.0.1:5000", "GET", path, "1.1", 200), None)


def test_the_access_log_shows_paths_without_query_strings() -> None:
    record = access_record("/v1/conversations/c1/items?api_key=sk-secret&after=x")
    assert not_a_probe(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /v1/conversations/c1/items HTTP/1.1" 200'
    assert not not_a_probe(access_record("/ready?verbose=1")) and not not_a_probe(access_record("/health"))


class StubEngine:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(args)
        return iter(())


class StubTokenizer:
    def decode(self, ids: list[int]) -> str:
        return " ".join(f"word{token}" for token in ids)


@pytest.mark.parametrize("log_prompts", [False, True])
def test_prompts_are_logged_only_with_log_prompts(log_prompts: bool, caplog: pytest.LogCaptureFixture) -> None:
    engine = ChatEngine.__new__(ChatEngine)  # no vLLM: what generate reads
    engine.engine, engine.tokenizer, engine.log_prompts = StubEngine(), StubTokenizer(), log_prompts  # type: ignore[assignment]
    engine.models = type("Models", (), {"lora_requests": {}})()  # type: ignore[assignment]
    with caplog.at_level(logging.DEBUG):
        engine.generate([7, 42], None, "req-1")  # type: ignore[arg-type]
    assert ("word7 word42" in caplog.text) is log_prompts
    assert len(engine.engine.calls) == 1  # type: ignore[attr-defined]


def test_log_prompts_turns_on_vllms_request_log_and_a_banner(caplog: pytest.LogCaptureFixture) -> None:
    assert build_engine_args("/models/m", {}, {}, 2**30, CACHE).enable_log_requests is False
    assert build_engine_args("/models/m", {}, {}, 2**30, CACHE, log_prompts=True).enable_log_requests is True
    with caplog.at_level(logging.WARNING, logger="server.api.app"):
        build_app(ServerSettings(api_keys={"ann": "sk-ann"}), build_engine_args("/models/m", {}, {}, 2**30, CACHE))
    assert "--log-prompts IS ON" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="server.api.app"):
        build_app(ServerSettings(api_keys={"ann": "sk-ann"}, log_prompts=True),
                  build_engine_args("/models/m", {}, {}, 2**30, CACHE))
    assert "--log-prompts IS ON" in caplog.text
