"""`lima serve`: the OpenAI-compatible server on vLLM (every vLLM engine flag accepted)."""

import argparse
import contextlib
import logging
import math
import signal
import sys
from collections.abc import Iterator, Sequence


def serve_parser() -> argparse.ArgumentParser:
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from server.core.engine.args import add_engine_cli_args
    from server.core.settings import add_flags

    parser = FlexibleArgumentParser(
        prog="lima serve",
        description="OpenAI-compatible chat server on vLLM. Every vLLM engine flag is accepted. "
        "Without --model it serves the embedded SmolLM2-135M-Instruct. Environment: LIMA_* (see docs/serving.md).",
    )
    add_flags(parser)  # the server's own, from its settings
    add_engine_cli_args(parser)
    return parser


PROBE_PATHS = ("/health", "/ready")


def not_a_probe(record: logging.LogRecord) -> bool:
    """Health and readiness probes (every second from `lima up`, every few from Kubernetes) stay out of the
    access log; their answers are the prober's to report. Query strings do too (a client may put a key or a
    prompt there): the access log shows paths only."""
    args = record.args if isinstance(record.args, tuple) else ()
    if len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
        record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        args = record.args
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
    from server.api.app import build_app
    from server.core.engine.args import (
        EngineArgsError,
        build_engine_args,
        check_lora_modules,
        explicit_args,
        lora_module_paths,
    )
    from server.core.engine.tools import check_tool_parser
    from server.core.settings import ServerSettings, flag_fields

    parser = serve_parser()
    given = explicit_args(parser, argv)
    parser.parse_args(argv)  # full validation and --help
    try:
        settings = ServerSettings(**{k: v for k, v in given.items() if k in flag_fields()})
        if settings.auto_tool_parser:
            check_tool_parser(settings.auto_tool_parser)
    except ValueError as exc:
        parser.error(str(exc))
    model = given.get("model") or settings.model or str(ensure_default_model(settings.data_dir))
    try:
        engine_args = build_engine_args(model, settings.engine_args, given, settings.cpu_kv_cache_bytes,
                                        settings.data_dir / "compile-cache", settings.log_prompts)
        check_lora_modules(lora_module_paths(settings.lora_modules), engine_args)
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
    server = GracefulServer(uvicorn.Config(app, host=settings.host, port=settings.port,
                                           log_level=settings.uvicorn_log_level,
                                           # streams get the timeout (sse_response); then a margin to cut them
                                           timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_seconds) + 5))
    logging.getLogger("uvicorn.access").addFilter(not_a_probe)
    print(f"lima: serving {model} on http://{settings.host}:{settings.port}/v1 "
          f"(ready when GET /ready answers 200)", flush=True)
    server.run()
    state = getattr(app.state, "lima", None)  # absent when uvicorn stopped before the app started
    if state is not None and (error := state.engine_error) is not None:
        print(f"lima: stopped because {error}", file=sys.stderr)
        return 1
    return 0
