"""The judge: versioned prompt templates (templates/<protocol>_v<N>.txt), one call per judgement at
temperature 0, and a parser for each protocol's verdict line. Where the judge takes OpenAI's structured output
(`response_format` with a JSON schema: OpenAI, vLLM, this project's server), the verdict is constrained to
{"verdict": <one of the labels>}; otherwise the template's one-line format is parsed. A reply that does not parse
is asked for again (`retries` times, with a reminder of the format), then recorded as unparsed: never a crash,
never dropped."""

import json
import re
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

TEMPLATES = Path(__file__).with_name("templates")
TEMPLATE_VERSION = "v1"
# The verdict line of each protocol, and the labels it may carry.
VERDICTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pairwise": ("VERDICT", ("A", "B", "TIE")),
    "absolute": ("RATING", ("FAIL", "PASS", "EXCELLENT")),
    "multiturn": ("RATING", ("FAIL", "PASS", "EXCELLENT")),
    "likert": ("SCORE", ("1", "2", "3", "4", "5", "6")),
    "safety": ("SAFETY", ("SAFE", "UNSAFE")),
}


def template(protocol: str) -> str:
    return (TEMPLATES / f"{protocol}_{TEMPLATE_VERSION}.txt").read_text()


def verdict_schema(protocol: str) -> dict[str, Any]:
    labels = VERDICTS[protocol][1]
    return {"type": "json_schema", "json_schema": {"name": f"{protocol}_verdict", "strict": True, "schema": {
        "type": "object", "properties": {"verdict": {"type": "string", "enum": list(labels)}},
        "required": ["verdict"], "additionalProperties": False}}}


def parse(protocol: str, reply: str | None) -> str | None:
    """The label of `reply`, or None when it has none or contradicts itself. Accepts {"verdict": label}, the
    verdict line anywhere ("VERDICT: B", "**Verdict:** b") or a reply that is just the label."""
    marker, labels = VERDICTS[protocol]
    if not reply or not reply.strip():
        return None
    try:
        structured = json.loads(reply)
    except json.JSONDecodeError:
        structured = None
    if isinstance(structured, dict):
        verdict = str(structured.get("verdict", "")).upper()
        return verdict if verdict in labels else None
    alternatives = "|".join(sorted(labels, key=len, reverse=True))
    found = {m.upper() for m in re.findall(rf"{marker}\W*\s*({alternatives})\b", reply, flags=re.I)}
    if not found:
        bare = reply.strip().strip(".*`'\" ").upper()
        found = {bare} if bare in labels else set()
    return found.pop() if len(found) == 1 else None


async def judge(client: AsyncOpenAI, model: str, protocol: str, fields: dict[str, str], retries: int,
                max_tokens: int, structured: bool) -> dict[str, Any]:
    """One judgement: {"prompt", "replies", "verdict" (None: unparsed), "template", "structured"}."""
    marker, labels = VERDICTS[protocol]
    prompt = template(protocol).format(**fields)
    messages: list[Any] = [{"role": "user", "content": prompt}]
    replies: list[str] = []
    verdict = None
    for _ in range(retries + 1):
        request: dict[str, Any] = {"model": model, "messages": messages, "temperature": 0.0, "max_tokens": max_tokens}
        if structured:
            request["response_format"] = verdict_schema(protocol)
        completion = await client.chat.completions.create(**request)
        reply = completion.choices[0].message.content or ""
        replies.append(reply)
        verdict = parse(protocol, reply)
        if verdict is not None:
            break
        messages += [{"role": "assistant", "content": reply},
                     {"role": "user", "content": f"Reply with exactly one line: {marker}: one of "
                                                 f"{', '.join(labels)}."}]
    return {"prompt": prompt, "replies": replies, "verdict": verdict,
            "template": f"{protocol}_{TEMPLATE_VERSION}", "structured": structured}
