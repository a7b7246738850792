"""`lima ui`: the Gradio chat page for a server, local or remote."""

import argparse
import os
from collections.abc import Sequence


def ui(argv: Sequence[str]) -> int:
    from server.core.settings import ServerSettings
    from ui.defaults import PAGE_PORT

    fields = ServerSettings.model_fields  # the server's own defaults, not a copy of them
    host, port = fields["host"].default, fields["port"].default
    parser = argparse.ArgumentParser(prog="lima ui", description="The Gradio chat page for a LIMA chat server.")
    parser.add_argument("--server-url", default=os.environ.get("LIMA_SERVER_URL", f"http://{host}:{port}"),
                        help="the server's base URL (LIMA_SERVER_URL)")
    parser.add_argument("--api-key", default=os.environ.get("LIMA_API_KEY"),
                        help="key for servers that require one (LIMA_API_KEY); the page can also take one")
    parser.add_argument("--host", default=host)
    parser.add_argument("--port", type=int, default=PAGE_PORT)
    args = parser.parse_args(argv)
    from ui.app import launch

    print(f"lima: chat page on http://{args.host}:{args.port} for the server {args.server_url}", flush=True)
    launch(args.server_url, args.host, args.port, args.api_key)
    return 0
