"""Soak: N concurrent streaming clients for M minutes against one `lima serve`, each sending the next request as
soon as its answer ends. Reports requests served, refused on purpose (503 at capacity, 429 rate limited) and
failed (anything else: the goal is zero), TTFT p50/p99, and the server's memory (the API process and its engine
processes) after a warm-up and at the end.

    python bench/soak.py [--clients 16] [--minutes 10] [--max-tokens 64] [--url http://127.0.0.1:8000]

Without --url it starts `lima serve` on the embedded default model.
"""

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.live_server import LiveServer
from harness.soak import soak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an already running server (its memory is not reported)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    server = None
    if args.url is None:
        scratch = Path(tempfile.mkdtemp())
        server = LiveServer(["--kv-cache-memory-bytes", str(2 * 1024**3), "--redis-dir", str(scratch / "redis")],
                            scratch / "server.log").wait_ready()
    try:
        report = asyncio.run(soak(args.url or server.url, server.process.pid if server else None, args.clients,
                                  args.minutes * 60, args.max_tokens))
    finally:
        if server:
            server.stop()
    print(json.dumps(report, indent=1))
    if report["memory_start"]:
        print(f"server RSS {report['memory_start']['server_mb']:.0f} -> {report['memory_end']['server_mb']:.0f} MB; "
              f"with engine {report['memory_start']['with_engine_mb']:.0f} -> "
              f"{report['memory_end']['with_engine_mb']:.0f} MB")


if __name__ == "__main__":
    main()
