"""The soak load: N concurrent streaming clients against one server, each sending the next request as soon as its
answer ends; what was served, refused on purpose (503, 429) and failed, TTFT, and the server's memory."""

import asyncio
import statistics
import time

import httpx
import psutil

from model_prep.evaluate.stats import percentile

PROMPTS = ["What is the capital of France?", "Give me three tips for sleeping better.",
           "Explain what a hash table is.", "Write a haiku about the sea."]


def memory_mb(pid: int) -> dict[str, float]:
    """RSS of the server process and of it with its children (the vLLM engine), in MB."""
    process = psutil.Process(pid)
    own = process.memory_info().rss
    children = sum(child.memory_info().rss for child in process.children(recursive=True))
    return {"server_mb": own / 2**20, "with_engine_mb": (own + children) / 2**20}


async def client_loop(client: httpx.AsyncClient, url: str, index: int, until: float, max_tokens: int,
                      results: dict[str, list]) -> None:
    turn = 0
    while time.monotonic() < until:
        body = {"messages": [{"role": "user", "content": PROMPTS[(index + turn) % len(PROMPTS)]}], "stream": True,
                "max_tokens": max_tokens}
        turn += 1
        started = time.perf_counter()
        try:
            async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                if response.status_code in (429, 503):
                    await response.aread()
                    results["refused"].append(response.status_code)
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                if response.status_code != 200:
                    results["failed"].append(f"HTTP {response.status_code}: {(await response.aread())[:200]!r}")
                    continue
                first = None
                done = False
                async for line in response.aiter_lines():
                    if first is None and '"content":"' in line and '"content":""' not in line:
                        first = time.perf_counter() - started
                    if '"error"' in line:
                        results["failed"].append(f"in-band error: {line[:200]}")
                    done = done or line == "data: [DONE]"
                if not done:
                    results["failed"].append("stream ended without [DONE]")
                    continue
                results["ttft"].append(first if first is not None else time.perf_counter() - started)
                results["served"].append(time.perf_counter() - started)
        except httpx.HTTPError as error:
            results["failed"].append(f"{type(error).__name__}: {error}")


async def soak(url: str, pid: int | None, clients: int, seconds: float, max_tokens: int,
               warmup_seconds: float = 10) -> dict:
    results: dict[str, list] = {"served": [], "refused": [], "failed": [], "ttft": []}
    async with httpx.AsyncClient(timeout=httpx.Timeout(300, connect=10)) as client:
        until = time.monotonic() + warmup_seconds
        await asyncio.gather(*(client_loop(client, url, i, until, max_tokens, {k: [] for k in results})
                               for i in range(clients)))
        start_memory = memory_mb(pid) if pid else None
        started = time.monotonic()
        await asyncio.gather(*(client_loop(client, url, i, started + seconds, max_tokens, results)
                               for i in range(clients)))
        elapsed = time.monotonic() - started
    return {
        "clients": clients, "seconds": round(elapsed, 1), "served": len(results["served"]),
        "refused_on_purpose": len(results["refused"]), "failed": len(results["failed"]),
        "failures": results["failed"][:10],
        "ttft_p50_ms": round(1000 * statistics.median(results["ttft"]), 1) if results["ttft"] else None,
        "ttft_p99_ms": round(1000 * percentile(results["ttft"], 0.99), 1) if results["ttft"] else None,
        "memory_start": start_memory, "memory_end": memory_mb(pid) if pid else None,
    }
