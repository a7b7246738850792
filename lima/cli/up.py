"""`lima up`: server (with its embedded Redis) and chat page together, a line per phase, logs to a file."""

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.core.settings import ServerSettings


def up(argv: Sequence[str]) -> int:
    """Server (with its embedded Redis) and chat page together; Ctrl-C or SIGTERM stops both.

    A short line per phase (model, engine, page), then the two URLs; the engine's and the page's own logs go to
    a file in the data directory (its path is printed), or to the terminal with --verbose."""
    import subprocess
    import time
    import urllib.request

    from model_prep.checkpoints.default_model import DEFAULT_MODEL_NAME, default_model_dir, ensure_default_model
    from server.core.history.redis_server import die_with_parent
    from server.core.settings import ServerSettings
    from ui.defaults import PAGE_PORT

    parser = argparse.ArgumentParser(
        prog="lima up", description="Start the server (embedded Redis included) and the chat page together. "
        "Other arguments go to `lima serve` (see `lima serve --help`).")
    fields = ServerSettings.model_fields  # the server's own defaults, not a copy of them
    parser.add_argument("--host", default=fields["host"].default)
    parser.add_argument("--port", type=int, default=fields["port"].default, help="server port")
    parser.add_argument("--ui-port", type=int, default=PAGE_PORT, help="chat page port")
    parser.add_argument("--model", help="checkpoint directory (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--data-dir", type=Path, help="model cache, Redis files and logs (LIMA_DATA_DIR)")
    parser.add_argument("--verbose", action="store_true", help="engine and HTTP logs on the terminal, not in a file")
    args, serve_args = parser.parse_known_args(argv)
    settings = ServerSettings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    server_url = f"http://{args.host}:{args.port}"
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"lima up: {line}", flush=True)

    if args.verbose:
        output = None
    else:
        log_path = settings.data_dir / "logs" / f"up-{time.strftime('%Y%m%d-%H%M%S')}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        output = log_path.open("ab")
    model = args.model or settings.model
    if model is None:
        cached = (default_model_dir(settings.data_dir) / "config.json").is_file()
        if not cached:
            say(f"converting the embedded {DEFAULT_MODEL_NAME} (first run only, ~30 s)...")
        # The converter's own progress bars and messages go to the log file too.
        quiet = open(output.name, "a") if output else contextlib.nullcontext(None)  # noqa: SIM115
        with quiet as log_text, contextlib.redirect_stderr(log_text or sys.stderr), \
                contextlib.redirect_stdout(log_text or sys.stdout):
            logging.disable(logging.INFO if output else logging.NOTSET)
            try:
                model = str(ensure_default_model(settings.data_dir))
            finally:
                logging.disable(logging.NOTSET)
        say(f"model    {model}" + ("" if cached else f" (converted in {time.monotonic() - started:.0f} s)"))
    if output:
        say(f"logs     {output.name}")

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    def start(*arguments: str) -> subprocess.Popen[bytes]:
        # Own session: a terminal's Ctrl-C reaches only this process, which stops each child exactly once;
        # and the kernel stops the children if this process is killed outright.
        return subprocess.Popen([sys.executable, "-m", "lima.cli", *arguments], start_new_session=True,
                                preexec_fn=die_with_parent, stdout=output, stderr=subprocess.STDOUT if output else None)

    def wait_until_answers(url: str, child: subprocess.Popen[bytes]) -> bool:
        while child.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return True
            except OSError:
                time.sleep(1)
        say(f"{url} never answered: the process exited with status {child.returncode}"
            + (f"; its log is {output.name}" if output else ""))
        return False

    signal.signal(signal.SIGTERM, stop)
    engine_started = time.monotonic()
    say("engine   starting...")
    children = [start("serve", "--host", args.host, "--port", str(args.port), "--model", model,
                      "--data-dir", str(settings.data_dir), *eager_unless_chosen(serve_args, settings))]
    try:
        # The model loads for a while; the page would only show "not ready" until then.
        if not wait_until_answers(f"{server_url}/ready", children[0]):
            return children[0].returncode or 1
        say(f"engine   ready in {time.monotonic() - engine_started:.0f} s")
        page_url = f"http://{args.host}:{args.ui_port}"
        children.append(start("ui", "--server-url", server_url, "--host", args.host, "--port", str(args.ui_port)))
        if not wait_until_answers(page_url, children[1]):
            return children[1].returncode or 1
        print(f"\n  chat page  {page_url}\n  API        {server_url}/v1 (OpenAI-compatible)\n\n"
              "Ctrl-C stops both.", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        return next(child.returncode for child in children if child.poll() is not None) or 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the orderly shutdown short
        say("stopping the chat page and the server (and its Redis)...")
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
        if output:
            output.close()


def eager_unless_chosen(serve_args: list[str], settings: "ServerSettings") -> list[str]:
    """The chat page within a minute of the first `make demo`: the engine runs eager unless the user chose.
    Compiling (`lima serve`'s default) costs 1-3 minutes on a model's first start (docs/benchmarks.md, "CPU
    serving speed")."""
    flags = {argument.split("=", 1)[0] for argument in serve_args}
    if {"--enforce-eager", "--no-enforce-eager"} & flags or "enforce_eager" in settings.engine_args:
        return serve_args
    return ["--enforce-eager", *serve_args]

