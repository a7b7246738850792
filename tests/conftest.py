"""What every test shares: a home of its own, the engine dtype under test, live servers started once per session,
and the end-of-run check that no process the suite started is still alive.

Tiers: a test that starts an engine (`lima serve`) is marked `live`, by hand or because it uses one of the live
fixtures below; `make test-fast` runs the others (`-m "not live"`), and a server started from a test that is not
marked `live` is refused, so the fast tier cannot start an engine by accident.
"""

import contextlib
import ctypes
import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import psutil
import pytest

from harness.live_server import LiveServer, free_port, stopped_together
from server.core.engine.args import cpu_dtype, cpu_flags
from server.core.history.redis_server import RedisServer
from tests.tiny_model import build_tiny_llama

REPO = Path(__file__).resolve().parent.parent
SMALL_ENGINE = ["--kv-cache-memory-bytes", str(256 * 1024**2), "--max-num-seqs", "16"]

# LIMA_TEST_DTYPE=bfloat16|float32 runs every live server's engine in that dtype on any CPU (bf16 is emulated
# where it is not native: slower, but it runs); `auto` (the default) lets the server choose as it does for users.
TEST_DTYPE = os.environ.get("LIMA_TEST_DTYPE", "auto")
if TEST_DTYPE not in ("auto", "bfloat16", "float32"):
    raise pytest.UsageError(f"LIMA_TEST_DTYPE={TEST_DTYPE!r}: use bfloat16, float32 or auto")

# What the end-of-run check looks for: the server, its vLLM engine processes, Redis, and the other programs tests
# start. This process is their subreaper, so any of them left behind, orphaned or not, is a descendant of it.
OUR_PROGRAMS = ("lima", "vllm", "VLLM::", "EngineCore", "redis-server", "chrom", "prometheus", "torchrun", "haproxy")
PR_SET_CHILD_SUBREAPER = 36
LIVE_FIXTURES = {"tiny_server", "default_server", "replicas"}


def served_dtype_for(checkpoint_dtype: str) -> str:
    """The dtype a live server's engine runs in: the forced one, else the server's own choice for this CPU."""
    chosen = cpu_dtype(TEST_DTYPE, cpu_flags())
    return checkpoint_dtype if chosen == "auto" else chosen


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Run the whole suite with a home under pytest's temporary directory: nothing it starts (servers, vLLM,
    Hugging Face, matplotlib, Chromium, W&B) can read or write the user's ~/.cache/lima or any other dotfile."""
    config.addinivalue_line("markers", "live: starts a `lima serve` engine (left out by `make test-fast`)")
    home = config._tmp_path_factory.getbasetemp() / "home"  # type: ignore[attr-defined]
    home.mkdir(exist_ok=True)
    os.environ.update({"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
                       "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local" / "share")})
    # One compile cache for every server of the run (each has its own data directory): a model compiles once.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(home / "compile-cache")
    # Orphans of the processes tests start (an engine whose server was killed, say) are re-parented here instead
    # of to init, so the end-of-run check finds every one of them.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that use a live fixture `live`; run the others first, while the session's engines start."""
    for item in items:
        if LIVE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.live)
    items.sort(key=lambda item: item.get_closest_marker("live") is not None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    LiveServer.refused = None if item.get_closest_marker("live") else f"{item.nodeid} is not marked live"


def leftover_processes() -> list[psutil.Process]:
    """Descendants of this process (all it started, orphans included) that are ours and still running."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:  # reap the orphans that have exited (zombies)
            pass
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            described = " ".join([process.name(), *process.cmdline()])
            if process.status() != psutil.STATUS_ZOMBIE and any(name in described for name in OUR_PROGRAMS):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if a server, engine or Redis it started outlives it (after a grace period); then stop them."""
    psutil.wait_procs(leftover_processes(), timeout=15)
    alive = leftover_processes()
    if not alive:
        return
    listing = "\n".join(f"  pid {p.pid}: {' '.join(p.cmdline())[:160]}" for p in alive)
    print(f"\nFAILED: {len(alive)} process(es) the suite started are still alive; stopping them:\n{listing}",
          file=sys.stderr)
    for process in alive:
        process.kill()
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def restored_environment() -> Iterator[None]:
    """os.environ as it was before the test (build_engine_args sets the CPU defaults' variables in-process)."""
    with mock.patch.dict(os.environ):
        yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def session_data_dir(factory: pytest.TempPathFactory) -> Path:
    """The servers' data directory: the embedded model is converted into it once per session."""
    path = factory.getbasetemp() / "lima-data"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return session_data_dir(tmp_path_factory)


def launch(args: list[str], log_name: str, tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    """Start `lima serve` without waiting, in the dtype under test, with its own data directory and embedded Redis
    under pytest's temporary directory (unless the arguments name them)."""
    extra = []
    # Eager, not `lima serve`'s compiled default: compiling costs 1-3 minutes per model on a cold cache, and the
    # suite starts a dozen engines; the compiled path's arithmetic is checked by bench/logprobs.py (README).
    if not {"--enforce-eager", "--no-enforce-eager"} & set(args):
        extra.append("--enforce-eager")
    if TEST_DTYPE != "auto" and "--dtype" not in args:
        extra += ["--dtype", TEST_DTYPE]
    if "--data-dir" not in args:
        extra += ["--data-dir", str(session_data_dir(tmp_path_factory))]
    if "--redis-dir" not in args:
        extra += ["--redis-dir", str(tmp_path_factory.mktemp("redis"))]
    return LiveServer([*args, *extra], tmp_path_factory.mktemp("logs") / log_name)


def start(args: list[str], log_name: str, tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    return launch(args, log_name, tmp_path_factory).wait_ready()


def tiny_args(model_dir: Path, *extra: str, dtype: str | None = None) -> list[str]:
    """`lima serve` flags for a tiny-model checkpoint: served as "tiny", small engine, and in float32 unless the
    run forces a dtype (the checkpoint is float32; serving it so keeps its greedy tokens the same on every CPU,
    while the default model's servers cover the server's own dtype choice)."""
    return ["--model", str(model_dir), "--served-model-name", "tiny", *SMALL_ENGINE, "--dtype", dtype or TINY_DTYPE,
            *extra]


TINY_DTYPE = "float32" if TEST_DTYPE == "auto" else TEST_DTYPE


def serve_tiny(model_dir: Path, extra: list[str], log_name: str, factory: pytest.TempPathFactory) -> LiveServer:
    return start(tiny_args(model_dir, *extra), log_name, factory)


@pytest.fixture(scope="session", autouse=True)
def session_servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[dict[str, LiveServer]]:
    """The session's shared servers that this run's tests use, all launched when the run starts: the tests that
    need no engine run first (see pytest_collection_modifyitems) while the engines start, and the starts overlap
    each other (an engine start is mostly single-threaded imports in three processes). All stopped at the end."""
    needed = set().union(*(getattr(item, "fixturenames", ()) for item in request.session.items))
    servers: dict[str, LiveServer] = {}
    refused, LiveServer.refused = LiveServer.refused, None  # launched for the live tests that come later
    try:
        with stopped_together(servers.values()):
            if "default_server" in needed:
                args = ["--kv-cache-memory-bytes", str(1024**3), "--max-num-seqs", "16"]
                servers["default"] = launch(args, "default.log", tmp_path_factory)
            if "tiny_server" in needed:
                args = tiny_args(request.getfixturevalue("tiny_model_dir"), "--max-request-bytes", "65536")
                servers["tiny"] = launch(args, "tiny.log", tmp_path_factory)
            if "replicas" in needed:
                args = replica_args(request.getfixturevalue("tiny_model_dir"), request.getfixturevalue("shared_redis"),
                                    tmp_path_factory)
                for name in ("replica-a", "replica-b"):
                    servers[name] = launch(args, f"{name}.log", tmp_path_factory)
            LiveServer.refused = refused
            yield servers
    finally:
        LiveServer.refused = refused


@pytest.fixture(scope="session")
def tiny_server(session_servers: dict[str, LiveServer]) -> LiveServer:
    return session_servers["tiny"].wait_ready()


@pytest.fixture(scope="session")
def default_server(session_servers: dict[str, LiveServer]) -> LiveServer:
    return session_servers["default"].wait_ready()


@pytest.fixture(scope="session")
def served_dtype() -> str:
    """The dtype the default model (a bfloat16 checkpoint) is served in by the live servers of this run."""
    return served_dtype_for("bfloat16")


# Two users of the history servers; bob's key is given to the server only as its SHA-256 digest.
API_KEYS = {"alice": "sk-alice-test", "bob": "sk-bob-test"}
HISTORY_MAX_ITEMS = 64


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a TCP port, shared by the two history replicas (as REDIS_URL would be)."""
    server = RedisServer(tmp_path_factory.mktemp("shared-redis"), port=free_port()).start()
    yield server
    server.stop()


def replica_args(tiny_model_dir: Path, shared_redis: RedisServer, factory: pytest.TempPathFactory) -> list[str]:
    keys_file = factory.getbasetemp() / "api_keys"
    keys_file.write_text(
        f"# user key\nalice {API_KEYS['alice']}\nbob sha256:{hashlib.sha256(API_KEYS['bob'].encode()).hexdigest()}\n"
    )
    return tiny_args(tiny_model_dir, "--redis-url", shared_redis.url, "--api-keys-file", str(keys_file),
                     "--history-max-items", str(HISTORY_MAX_ITEMS))


@pytest.fixture(scope="session")
def replicas(session_servers: dict[str, LiveServer]) -> tuple[LiveServer, LiveServer]:
    """Two `lima serve` processes on one Redis, with API keys: the stateful tests talk to both."""
    return session_servers["replica-a"].wait_ready(), session_servers["replica-b"].wait_ready()
