"""`lima ui`: the Gradio chat page for a server, local or remote."""

import argparse
import os
from collections.abc import Sequence


def ui(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="lima ui", description="The Gradio chat page for a LIMA chat server.")
    parser.add_argument("--server-url", default=os.environ.get("LIMA_SERVER_URL", "http://127.0.0.1:8000"),
                        help="the server's base URL (LIMA_SERVER_URL)")
    parser.add_argument("--api-key", default=os.environ.get("LIMA_API_KEY"),
                        help="key for servers that require one (LIMA_API_KEY); the page can also take one")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args(argv)
    from ui.app import launch

    print(f"lima: chat page on http://{args.host}:{args.port} for the server {args.server_url}", flush=True)
    launch(args.server_url, args.host, args.port, args.api_key)
    return 0
