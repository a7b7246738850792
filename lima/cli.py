"""`lima up` runs server and chat page together; `lima serve` the server, `lima ui` the page; `lima prep ...`
prepares models. `lima --help` lists everything."""

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

# Nothing in this project may reach a model hub or phone home; users can still override these.
_OFFLINE = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
for _var, _value in _OFFLINE.items():
    os.environ.setdefault(_var, _value)

log = logging.getLogger("lima")


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


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (booleans as --x/--no-x), all optional so the file and preset can fill in."""
    from model_prep.train.config import PRESETS, TrainConfig

    parser.add_argument("--preset", choices=sorted(PRESETS), help="the paper's 65B recipe or its 7B ablation recipe")
    parser.add_argument("--config", type=Path, help="TOML or YAML file of the fields below")
    for name, field in TrainConfig.model_fields.items():
        flag = f"--{name.replace('_', '-')}"
        if field.annotation is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=field.description)
        elif name != "adam_betas":  # a pair: config file only
            default = "required" if field.is_required() else f"default: {field.default}"
            listed = field.annotation in (list[str], list[str] | None)
            parser.add_argument(flag, default=None, nargs="*" if listed else None,
                                help=f"{field.description or ''} ({default})".lstrip())


def refuse(command: str, exc: Exception) -> int:
    """A bad config or input file: one line on stderr and exit status 2, as argparse does for bad flags."""
    print(f"lima prep {command}: {exc}", file=sys.stderr)
    return 2


def run_training(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from model_prep.train.config import TrainConfig, build_config
    from model_prep.train.recipe import train

    overrides = {name: getattr(args, name) for name in TrainConfig.model_fields if hasattr(args, name)}
    try:
        config = build_config(args.preset, args.config, overrides)
    except (ValidationError, ValueError, OSError) as exc:
        return refuse("train", exc)
    print(f"lima prep train: last checkpoint {train(config)}")
    return 0


def add_data_commands(parser: argparse.ArgumentParser) -> None:
    from model_prep.curation.build import ABLATIONS, Counts

    data = parser.add_subparsers(dest="data_command", required=True)
    build = data.add_parser("build", help="the paper's 1,000 / 50 / 300 sets from raw public dumps")
    ablation = data.add_parser("ablation", help="the paper's data ablation sets (Stack Exchange, wikiHow)")
    ablation.add_argument("kind", choices=ABLATIONS)
    ablation.add_argument("--sizes", type=int, nargs="+", default=[2000],
                          help="set sizes (se-scale: e.g. 2000 4000 8000 16000 32000)")
    for command in (build, ablation):
        command.add_argument("--out", type=Path, required=True, help="output directory")
        command.add_argument("--stackexchange", type=Path, help="Stack Exchange dump: one directory per site")
        command.add_argument("--wikihow", type=Path, help="wikiHow CSV or JSON(L) dump")
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--temperature", type=float, default=3.0, help="site sampling temperature (3)")
        command.add_argument("--per-site-top", type=int, default=500, help="top questions considered per site")
    build.add_argument("--reddit", type=Path, help="Pushshift .zst/.jsonl file or directory")
    build.add_argument("--sni", type=Path, help="Super-NaturalInstructions tasks directory")
    build.add_argument("--authored", type=Path, nargs="+", default=[], help="hand-written JSONL files")
    for name in ("writing-prompts", "ask-reddit", "dialogues"):
        build.add_argument(f"--keep-{name}", type=Path, help=f"keep-list of {name} candidate ids (one per line)")
    build.add_argument("--multi-turn", action=argparse.BooleanOptionalAction, default=True,
                       help="add the Stack Exchange dialogue candidates to train")
    build.add_argument("--count", action="append", default=[], metavar="NAME=N",
                       help=f"override a count; names: {', '.join(Counts.model_fields)}")
    build.add_argument("--strict", action="store_true",
                       help="exit 1 when a set is short of its count or an input could not be read")
    audit = data.add_parser("audit", help="print a build's kept rows with rule hits and borderline words marked")
    audit.add_argument("out", type=Path, help="a build's output directory")
    audit.add_argument("--split", choices=["train", "dev", "test"], action="append", help="default: all three")
    audit.add_argument("--only-marked", action="store_true", help="leave out the rows with nothing marked")


def run_data(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from model_prep.curation.build import BuildConfig, Counts, ablation, build, problems

    try:
        if args.data_command == "audit":
            from model_prep.curation.audit import SPLITS, audit

            audit(args.out, tuple(args.split or SPLITS), args.only_marked)
            return 0
        given = {key: value for key, value in vars(args).items() if key in BuildConfig.model_fields}
        counts = dict(item.split("=", 1) for item in getattr(args, "count", []))
        config = BuildConfig(**given, counts=Counts(**counts))
        if args.data_command == "ablation":
            for path in ablation(args.kind, args.sizes, config):
                print(path)
            return 0
        report = build(config)
    except (ValidationError, ValueError, OSError) as exc:
        return refuse(f"data {args.data_command}", exc)
    print(f"lima prep data build: {report['splits']} -> {config.out} (report.md, lengths.png, sites.png)")
    found = problems(report)
    for problem in found:
        print(f"WARNING: {problem}", file=sys.stderr)
    if found and args.strict:
        print(f"lima prep data build: --strict: {len(found)} problem(s) above", file=sys.stderr)
        return 1
    return 0


def add_eval_commands(parser: argparse.ArgumentParser) -> None:
    from model_prep.evaluate.config import PROTOCOLS

    evals = parser.add_subparsers(dest="eval_command", required=True)
    run = evals.add_parser("run", help="answers, judge verdicts, summary and report (resumable)")
    run.add_argument("--config", type=Path, help="TOML or YAML with the fields below (flags win)")
    run.add_argument("--out", type=Path, help="results directory (rerun with the same one to resume)")
    run.add_argument("--test", type=Path, help="test prompts: LIMA JSONL, JSONL of {prompt}, or plain lines")
    run.add_argument("--candidate", help="name=URL[@model], e.g. lima=http://127.0.0.1:8000/v1")
    run.add_argument("--baseline", action="append", default=[], help="name=URL[@model]; repeat for several")
    run.add_argument("--judge", help="name=URL[@model] of the judge")
    run.add_argument("--protocols", nargs="+", choices=PROTOCOLS, help=f"default: all ({', '.join(PROTOCOLS)})")
    run.add_argument("--safety-prompts", type=Path, help="sensitive prompts (default: test rows marked sensitive)")
    run.add_argument("--dialogues", type=Path, help="JSONL of {id, turns: [user messages]} for multiturn")
    run.add_argument("--multiturn-api", choices=["conversations", "chat"],
                     help="conversations: server-side history (this project's server); chat: resend history")
    run.add_argument("--samples", type=int, help="answers per prompt (default 1; the ablations used 5)")
    run.add_argument("--max-tokens", type=int, help="answer length (LIMA: 2048)")
    run.add_argument("--concurrency", type=int, help="calls in flight (8)")
    run.add_argument("--limit", type=int, help="only the first N test prompts")
    agreement = evals.add_parser("agreement", help="tie-discounted accuracy between two raters' pairwise labels")
    agreement.add_argument("first", type=Path, help="CSV with id,label, or a results directory")
    agreement.add_argument("second", type=Path)


def run_eval(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from pydantic import ValidationError

    from model_prep.evaluate.config import Endpoint, EvalConfig

    try:
        if args.eval_command == "agreement":
            from model_prep.evaluate.agreement import read_labels
            from model_prep.evaluate.stats import tie_discounted_accuracy

            print(json.dumps(tie_discounted_accuracy(read_labels(args.first), read_labels(args.second))))
            return 0
        from model_prep.evaluate.run import run
        from model_prep.train.config import read_config_file

        fields = read_config_file(args.config) if args.config else {}
        flags = {"out": args.out, "test": args.test, "safety_prompts": args.safety_prompts,
                 "dialogues": args.dialogues, "multiturn_api": args.multiturn_api, "samples": args.samples,
                 "concurrency": args.concurrency, "limit": args.limit, "protocols": args.protocols}
        fields.update({key: value for key, value in flags.items() if value is not None})
        if args.candidate:
            fields["candidate"] = Endpoint.parse(args.candidate)
        if args.baseline:
            fields["baselines"] = [Endpoint.parse(spec) for spec in args.baseline]
        if args.judge:
            fields["judge"] = Endpoint.parse(args.judge)
        if args.max_tokens:
            fields["decoding"] = {**fields.get("decoding", {}), "max_tokens": args.max_tokens}
        summary = asyncio.run(run(EvalConfig(**fields)))
    except (ValidationError, ValueError, OSError) as exc:
        return refuse(f"eval {args.eval_command}", exc)
    print(f"lima prep eval run: results in {fields['out']} (summary.json, report.md); "
          f"{summary['calls_failed_this_run']} calls failed and are left for a rerun")
    return 0


def prep(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="lima prep", description="Model preparation.")
    commands = parser.add_subparsers(dest="command", required=True)
    imp = commands.add_parser("import-gguf", help="GGUF file -> Hugging Face checkpoint directory vLLM serves")
    imp.add_argument("gguf", type=Path)
    imp.add_argument("out", type=Path)
    imp.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    imp.add_argument("--decoding", choices=["model", "lima"], default="model",
                     help="model: the sampling the GGUF records (its authors'; none recorded = neutral); "
                     "lima: LIMA's (top_p 0.9, temperature 0.7, repetition penalty 1.2)")
    default = commands.add_parser("default-model", help="convert the embedded default model once; print its path")
    default.add_argument("--data-dir", type=Path)
    train_parser = commands.add_parser(
        "train", help="fine-tune with LIMA's recipe (defaults: the paper's); preset < --config < flags")
    add_train_flags(train_parser)
    merge_parser = commands.add_parser("merge", help="LoRA checkpoint -> one merged checkpoint `lima serve` loads")
    merge_parser.add_argument("adapter", type=Path, help="an epoch-NN directory of a LoRA run")
    merge_parser.add_argument("out", type=Path)
    merge_parser.add_argument("--base", help="base model (default: the one the adapter names)")
    merge_parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    chooser = commands.add_parser("select", help="dev answers of every epoch side by side; name the checkpoint")
    chooser.add_argument("run", type=Path, help="the training output directory")
    chooser.add_argument("--epoch", type=int, help="choose this epoch (the paper chose by hand)")
    chooser.add_argument("--rule", default="lowest-dev-loss", choices=["lowest-dev-loss", "latest"])
    chooser.add_argument("--from", dest="first", type=int, default=5, help="first epoch of the window (5)")
    chooser.add_argument("--to", dest="last", type=int, default=10, help="last epoch of the window (10)")
    add_data_commands(commands.add_parser("data", help="build the train/dev/test sets or the ablation sets"))
    add_eval_commands(commands.add_parser("eval", help="the paper's evaluations against OpenAI-compatible endpoints"))
    args = parser.parse_args(argv)
    if args.command == "data":
        return run_data(args)
    if args.command == "eval":
        return run_eval(args)
    if args.command == "select":
        from model_prep.train.select import select

        try:
            print(select(args.run, args.epoch, args.rule, args.first, args.last))
        except (FileNotFoundError, ValueError) as exc:
            parser.error(str(exc))
        return 0
    if args.command == "train":
        return run_training(args)
    if args.command == "merge":
        from model_prep.checkpoints.merge import merge

        print(merge(args.adapter, args.out, args.base, args.dtype))
        return 0

    from model_prep.checkpoints.gguf_import import GGUFImportError, import_gguf

    try:
        if args.command == "import-gguf":
            from model_prep.checkpoints.decoding import LIMA_DECODING

            print(import_gguf(args.gguf, args.out, args.dtype, LIMA_DECODING if args.decoding == "lima" else None))
        else:
            from model_prep.checkpoints.default_model import ensure_default_model
            from server.settings import ServerSettings

            print(ensure_default_model(args.data_dir or ServerSettings().data_dir))
    except (GGUFImportError, FileNotFoundError) as exc:
        parser.error(str(exc))
    return 0


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


def up(argv: Sequence[str]) -> int:
    """Server (with its embedded Redis) and chat page together; Ctrl-C or SIGTERM stops both.

    A short line per phase (model, engine, page), then the two URLs; the engine's and the page's own logs go to
    a file in the data directory (its path is printed), or to the terminal with --verbose."""
    import subprocess
    import time
    import urllib.request

    from model_prep.checkpoints.default_model import DEFAULT_MODEL_NAME, default_model_dir, ensure_default_model
    from server.history.redis_server import die_with_parent
    from server.settings import ServerSettings

    parser = argparse.ArgumentParser(
        prog="lima up", description="Start the server (embedded Redis included) and the chat page together. "
        "Other arguments go to `lima serve` (see `lima serve --help`).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="server port")
    parser.add_argument("--ui-port", type=int, default=7860, help="chat page port")
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
                      "--data-dir", str(settings.data_dir), *serve_args)]
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


COMMANDS = {"serve": serve, "prep": prep, "ui": ui, "up": up}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] not in COMMANDS:
        print("usage: lima {up,serve,ui,prep} ...\n  lima up --help\n  lima serve --help\n  lima ui --help\n"
              "  lima prep --help", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
