"""`lima serve`: the OpenAI-compatible server on vLLM (every vLLM engine flag accepted)."""

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path


def serve_parser() -> argparse.ArgumentParser:
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from server.engine.args import add_engine_cli_args

    parser = FlexibleArgumentParser(
        prog="lima serve",
        description="OpenAI-compatible chat server on vLLM. Every vLLM engine flag is accepted. "
        "Without --model it serves the embedded SmolLM2-135M-Instruct. Environment: LIMA_* (see README).",
    )
    ours = parser.add_argument_group("server (defaults from LIMA_* environment variables)")
    ours.add_argument("--host", help="bind address (LIMA_HOST, default 127.0.0.1)")
    ours.add_argument("--port", type=int, help="port (LIMA_PORT, default 8000)")
    ours.add_argument("--data-dir", type=Path, help="cache for the converted default model (LIMA_DATA_DIR)")
    ours.add_argument("--max-request-bytes", type=int, help="larger bodies get 413 (LIMA_MAX_REQUEST_BYTES)")
    ours.add_argument("--max-choices", type=int, help="upper bound on n (LIMA_MAX_CHOICES)")
    ours.add_argument("--uvicorn-log-level", dest="log_level", help="HTTP log level (LIMA_LOG_LEVEL)")
    history = parser.add_argument_group("conversation store and users")
    history.add_argument("--redis-url", help="shared Redis (REDIS_URL); default: an embedded redis-server")
    history.add_argument("--redis-dir", type=Path, help="embedded Redis files (LIMA_REDIS_DIR, default DATA_DIR/redis)")
    history.add_argument("--history-ttl-seconds", type=int, help="expiry after the last write, 0 = never")
    history.add_argument("--history-max-items", type=int, help="items per conversation (LIMA_HISTORY_MAX_ITEMS)")
    history.add_argument("--api-keys-file", type=Path, help="`user_id key` lines (LIMA_API_KEYS_FILE)")
    limits = parser.add_argument_group("load limits and shutdown")
    limits.add_argument("--max-pending-requests", type=int,
                        help="generations running or queued before 503 (LIMA_MAX_PENDING_REQUESTS, 4 x max_num_seqs)")
    limits.add_argument("--rate-limit-per-minute", type=int, help="per user, shared in Redis; unset = none")
    limits.add_argument("--rate-limit-burst", type=int, help="bucket size (default: the per-minute rate)")
    limits.add_argument("--shutdown-timeout-seconds", type=float,
                        help="on SIGTERM, how long in-flight requests may finish (default 30)")
    add_engine_cli_args(parser)
    return parser


PROBE_PATHS = ("/health", "/ready")


def not_a_probe(record: logging.LogRecord) -> bool:
    """Health and readiness probes (every second from `lima up`, every few from Kubernetes) stay out of the
    access log; their answers are the prober's to report."""
    args = record.args if isinstance(record.args, tuple) else ()
    return not (len(args) >= 3 and args[2] in PROBE_PATHS)


def serve(argv: Sequence[str]) -> int:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """SIGINT/SIGTERM start uvicorn's graceful shutdown; afterwards the process exits with its own status (0,
        or 1 when the engine died) instead of uvicorn's re-raising of the signal (status 143)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    from model_prep.checkpoints.default_model import ensure_default_model
    from server.app import build_app
    from server.engine.args import EngineArgsError, build_engine_args, explicit_args
    from server.settings import ServerSettings

    parser = serve_parser()
    given = explicit_args(parser, argv)
    parser.parse_args(argv)  # full validation and --help
    server_fields = {
        "host", "port", "data_dir", "max_request_bytes", "max_choices", "log_level", "redis_url", "redis_dir",
        "history_ttl_seconds", "history_max_items", "api_keys_file", "max_pending_requests", "rate_limit_per_minute",
        "rate_limit_burst", "shutdown_timeout_seconds",
    }
    settings = ServerSettings(**{k: v for k, v in given.items() if k in server_fields})
    model = given.get("model") or settings.model or str(ensure_default_model(settings.data_dir))
    try:
        engine_args = build_engine_args(model, settings.engine_args, given, settings.cpu_kv_cache_bytes)
    except EngineArgsError as exc:
        parser.error(str(exc))
    server: uvicorn.Server | None = None

    def stop_server() -> None:
        if server is not None:
            server.should_exit = True

    try:
        app = build_app(settings, engine_args, stop_server)
    except (OSError, ValueError) as exc:
        parser.error(f"API keys: {exc}")
    server = GracefulServer(uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                                           # streams get the timeout (sse_response); then a margin to cut them
                                           timeout_graceful_shutdown=settings.shutdown_timeout_seconds + 5))
    logging.getLogger("uvicorn.access").addFilter(not_a_probe)
    print(f"lima: serving {model} on http://{settings.host}:{settings.port}/v1 "
          f"(ready when GET /ready answers 200)", flush=True)
    server.run()
    if app.state.engine_error:
        print(f"lima: stopped because {app.state.engine_error}", file=sys.stderr)
        return 1
    return 0
