"""Security on a real server with API keys (one tiny-model server for all): key guessing throttled per client
address (X-Forwarded-For from the trusted loopback proxy stands for distinct clients), per-user quotas answered
with 403 quota_exceeded and nothing stored, and a whole session leaves no key, no prompt and no answer text in the
server's log."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from harness.live_server import LiveServer
from tests.conftest import launch, tiny_args
from tests.metrics_scrape import scrape, total

MARK = uuid.uuid4().hex[:12]
SECRET_KEY = f"sk-live-{MARK}-keymark"  # the right key: its marker must never reach the log
WRONG_KEY = f"sk-wrong-{MARK}-guessmark"
PROMPT_WORD = f"zebraquill{MARK}"  # a word no log has a reason to hold, unless it logs prompts
LIMIT, WINDOW = 3, 60
# Per-user quotas of the dedicated server: the session of the log test stays far below both.
MAX_CONVERSATIONS, MAX_BYTES = 3, 64 * 1024


@pytest.fixture(scope="module")
def secured_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    keys_file = tmp_path_factory.mktemp("security") / "api_keys"
    keys_file.write_text(f"carol {SECRET_KEY}\n")
    args = tiny_args(tiny_model_dir, "--api-keys-file", str(keys_file), "--auth-failures-per-window", str(LIMIT),
                     "--auth-failure-window-seconds", str(WINDOW), "--trusted-proxies", "127.0.0.1",
                     "--max-conversations-per-user", str(MAX_CONVERSATIONS), "--max-stored-bytes-per-user",
                     str(MAX_BYTES))
    server = launch(args, "security.log", tmp_path_factory)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def models(server: LiveServer, key: str, client: str) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/models", timeout=30,
                     headers={"Authorization": f"Bearer {key}", "X-Forwarded-For": client})


@pytest.mark.live
def test_wrong_keys_throttle_their_address_only(secured_server: LiveServer) -> None:
    guesser, other = "198.51.100.10", "198.51.100.11"
    before = scrape(secured_server.url)
    for _ in range(LIMIT):
        assert models(secured_server, WRONG_KEY, guesser).status_code == 401
    refused = models(secured_server, SECRET_KEY, guesser)  # the right key, too late: refused until the window ends
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "too_many_failed_authentications"
    assert 1 <= int(refused.headers["Retry-After"]) <= WINDOW
    assert MARK not in refused.text
    assert models(secured_server, SECRET_KEY, other).status_code == 200  # another client is not affected
    after = scrape(secured_server.url)

    def grew(outcome: str) -> float:
        return (total(after, "lima_auth_failures_total", outcome=outcome)
                - total(before, "lima_auth_failures_total", outcome=outcome))

    assert (grew("rejected_key"), grew("throttled")) == (LIMIT, 1)


@pytest.mark.live
def test_quotas_refuse_with_a_403_naming_the_limit_and_store_nothing(secured_server: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {SECRET_KEY}", "X-Forwarded-For": "203.0.113.30"}
    api = httpx.Client(base_url=f"{secured_server.url}/v1", headers=headers, timeout=60)
    before = scrape(secured_server.url)
    created = [api.post("/conversations", json={}).json()["id"] for _ in range(MAX_CONVERSATIONS)]
    refused = api.post("/conversations", json={})
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["type"]) == ("quota_exceeded", "permission_error")
    assert f"{MAX_CONVERSATIONS} conversations per user (--max-conversations-per-user)" in error["message"]
    assert api.delete(f"/conversations/{created.pop(0)}").status_code == 200
    created.append(api.post("/conversations", json={}).json()["id"])  # room again
    # Fill the byte quota but ~1 kB (the item's JSON around the text): no turn fits any more.
    conversation = created[-1]
    filled = api.post(f"/conversations/{conversation}/items",
                      json={"items": [{"role": "user", "content": "w" * (MAX_BYTES - 1200)}]})
    assert filled.status_code == 200, filled.text
    turn = {"model": "tiny", "conversation": conversation, "input": "Say hi. " * 40, "max_output_tokens": 4}
    over = api.post("/responses", json=turn)
    assert over.status_code == 403 and over.json()["error"]["code"] == "quota_exceeded", over.text
    assert "--max-stored-bytes-per-user" in over.json()["error"]["message"]
    # Streamed, the answer is generated before the turn is stored: the refusal comes as the stream's error event
    # and response.failed (as conversation_full does).
    streamed = api.post("/responses", json={**turn, "stream": True}).text
    events = [json.loads(line.removeprefix("data: ")) for line in streamed.splitlines() if line.startswith("data: ")]
    assert [event["code"] for event in events if event["type"] == "error"] == ["quota_exceeded"]
    assert events[-1]["type"] == "response.failed"
    assert len(api.get(f"/conversations/{conversation}/items").json()["data"]) == 1  # nothing stored
    after = scrape(secured_server.url)
    refusals = {quota: total(after, "lima_quota_decisions_total", quota=quota, outcome="refused")
                - total(before, "lima_quota_decisions_total", quota=quota, outcome="refused")
                for quota in ("conversations", "stored_bytes")}
    assert refusals == {"conversations": 1, "stored_bytes": 2}
    for conversation_id in created:  # the log test below starts from an empty quota
        assert api.delete(f"/conversations/{conversation_id}").status_code == 200


@pytest.mark.live
def test_a_whole_session_logs_no_key_prompt_or_answer(secured_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{secured_server.url}/v1", api_key=SECRET_KEY, max_retries=0,
                           default_headers={"X-Forwarded-For": "203.0.113.20"})
    chat = client.chat.completions.create(model="tiny", max_tokens=8, temperature=0,
                                          messages=[{"role": "user", "content": f"Say {PROMPT_WORD} twice."}])
    answers = [chat.choices[0].message.content or ""]
    conversation = client.conversations.create(items=[{"role": "system", "content": f"Never say {PROMPT_WORD}."}])
    with client.responses.create(model="tiny", conversation=conversation.id, max_output_tokens=8, stream=True,
                                 input=f"Spell {PROMPT_WORD} backwards.") as events:
        answers.append("".join(event.delta for event in events if event.type == "response.output_text.delta"))
    wrong = openai.OpenAI(base_url=f"{secured_server.url}/v1", api_key=WRONG_KEY, max_retries=0,
                          default_headers={"X-Forwarded-For": "203.0.113.21"})
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    # A key in a query string (the server never reads one there) stays out of the access log too.
    assert httpx.get(f"{secured_server.url}/v1/models?api_key={SECRET_KEY}", timeout=30).status_code == 401
    assert client.models.list().data[0].id == "tiny"
    secured_server.stop()  # every process of it has written its last line
    log = secured_server.log_path.read_text(errors="replace")
    assert "POST /v1/chat/completions" in log and "POST /v1/responses" in log  # it is the log of this session
    for secret in (SECRET_KEY, WRONG_KEY, MARK, PROMPT_WORD, *(a.strip() for a in answers if len(set(a.strip())) > 4)):
        assert secret not in log, f"{secret!r} is in the server's log"
