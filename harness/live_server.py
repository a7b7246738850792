"""A server as a real subprocess on a loopback port (`lima serve`, or vLLM's own for benchmarks)."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """`lima serve ARGS`; `command` replaces it (the port is appended as `--port N`).

    The process leads a process group of its own (its engine processes and Redis join it), so `stop` can end
    everything it started even when it does not exit by itself. Use it as a context manager, or call `stop` in a
    `finally`: a test that fails must not leave a server behind. `wait_ready` stops a server that never gets ready.
    """

    # Set by the test suite before each test: why a server may not start now (a fast-tier test), or None.
    refused: str | None = None

    def __init__(
        self,
        args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        ready_path: str = "/ready",
    ) -> None:
        if LiveServer.refused:
            raise RuntimeError(f"no server may start here: {LiveServer.refused} (mark it `live`)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_path = ready_path
        self.log_path = log_path
        self.log = log_path.open("w")
        self.process = subprocess.Popen(
            [*(command or [sys.executable, "-m", "lima.cli", "serve"]), "--port", str(self.port), *args],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True,
        )

    def __enter__(self) -> "LiveServer":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def wait_ready(self, timeout: float = 600) -> "LiveServer":
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited ({self.process.returncode}):\n{self.log_tail()}")
                try:
                    if httpx.get(f"{self.url}{self.ready_path}", timeout=2).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(1)
            raise TimeoutError(f"server not ready after {timeout} s:\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise

    def log_tail(self, chars: int = 4000) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait (the graceful path a user's Ctrl-C takes); past `timeout`, kill the whole group.
        Idempotent. Processes that outlive a graceful exit are left for the suite's end-of-run check to report."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            status = self.process.wait()
        self.log.close()
        return status


@contextlib.contextmanager
def stopped_together(servers: Iterable[LiveServer]) -> Iterator[None]:
    """On exit, SIGTERM every server first and then wait for each: their shutdowns (engine, Redis) overlap."""
    try:
        yield
    finally:
        servers = list(servers)
        for server in servers:
            if server.process.poll() is None:
                server.process.terminate()
        for server in servers:
            server.stop()


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> bool:
    """Poll `condition` every 0.2 s until it holds (True) or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False
