"""The shipped HAProxy configuration (deploy/haproxy/haproxy.cfg) in front of `lima serve` processes on this
machine, for tests and benchmarks. Only how replicas are found changes: the file finds them by DNS (one name,
one address per replica, as compose and Kubernetes give it); here they are loopback ports, so each
`server-template` line becomes one `server` line per replica. Everything else is the file as users run it."""

import re
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import httpx

from harness.live_server import free_port, wait_for
from server.core.history.redis_server import die_with_parent

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "haproxy" / "haproxy.cfg"
SERVER_TEMPLATE = re.compile(r"^(\s*)server-template .*$", re.MULTILINE)


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).is_file()), None)


def replaced(text: str, old: str, new: str) -> str:
    """`text` with every `old` replaced; the file must hold `old` (a renamed directive fails here, not silently)."""
    if old not in text:
        raise ValueError(f"{CONFIG} no longer has {old!r}")
    return text.replace(old, new)


def render(server_urls: Sequence[str], admin_socket: Path, affinity: bool = True) -> str:
    """The shipped file with static replicas and an admin socket (to take a replica out, as an operator would).
    `affinity=False` is the baseline a plain balancer gives: every request round-robin, no conversation hashing,
    no response stick table."""
    servers = "\n".join(f"\\1server lima{i} {urlsplit(url).netloc}" for i, url in enumerate(server_urls, 1))
    text, count = SERVER_TEMPLATE.subn(servers, CONFIG.read_text())
    if count == 0:
        raise ValueError(f"{CONFIG} has no server-template line")
    text = replaced(text, "\nglobal\n", f"\nglobal\n    stats socket {admin_socket} level admin\n")
    if not affinity:
        text = replaced(text, "    use_backend by_conversation", "    # use_backend by_conversation")
        text = replaced(text, "    stick ", "    # stick ")
        text = replaced(text, "balance leastconn", "balance roundrobin")
    return text


class LocalBalancer:
    """haproxy in the foreground on free loopback ports; `url` is the API, `metrics_url` its exporter.
    Use as a context manager: the process is stopped whatever happens (and dies with its parent)."""

    def __init__(self, server_urls: Sequence[str], directory: Path, affinity: bool = True) -> None:
        binary = haproxy_binary()
        if binary is None:
            raise FileNotFoundError("haproxy is not installed (Debian's haproxy package; make test installs it)")
        self.replicas = len(server_urls)
        self.port, self.metrics_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.config = directory / ("haproxy.cfg" if affinity else "haproxy-round-robin.cfg")
        self.admin_socket = self.config.with_suffix(".sock")
        self.config.write_text(render(server_urls, self.admin_socket, affinity))
        self.backends = re.findall(r"^backend (\S+)", self.config.read_text(), re.MULTILINE)
        self.log_path = self.config.with_suffix(".log")
        environment = {"LIMA_BALANCER_PORT": str(self.port), "LIMA_BALANCER_METRICS_PORT": str(self.metrics_port)}
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen([binary, "-W", "-db", "-f", str(self.config)], stdout=log,
                                            stderr=subprocess.STDOUT, env=environment, preexec_fn=die_with_parent)

    def __enter__(self) -> "LocalBalancer":
        try:
            if not wait_for(self.all_up, timeout=30):
                raise TimeoutError(f"haproxy did not see {self.replicas} replicas up:\n{self.log_path.read_text()}")
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def all_up(self) -> bool:
        """Every replica passes its /ready check in both backends (the exporter's per-server status)."""
        if self.process.poll() is not None:
            raise RuntimeError(f"haproxy exited ({self.process.returncode}):\n{self.log_path.read_text()}")
        try:
            text = httpx.get(self.metrics_url, timeout=2).text
        except httpx.TransportError:
            return False
        up = re.findall(r'^haproxy_server_status\{[^}]*state="UP"[^}]*\} 1$', text, re.MULTILINE)
        return len(up) == 2 * self.replicas

    def admin(self, command: str) -> str:
        """One command on HAProxy's runtime API."""
        with socket.socket(socket.AF_UNIX) as connection:
            connection.connect(str(self.admin_socket))
            connection.sendall(command.encode() + b"\n")
            return connection.makefile().read()

    def drain(self, server: str) -> None:
        """Take `server` (e.g. "lima1") out of every backend, as a replica that stopped or failed its checks."""
        for backend in self.backends:
            self.admin(f"set server {backend}/{server} state maint")

    def ready(self, server: str) -> None:
        """Put `server` back, and wait until its health checks pass again."""
        for backend in self.backends:
            self.admin(f"set server {backend}/{server} state ready")
        if not wait_for(self.all_up, timeout=30):
            raise TimeoutError(f"{server} did not come back up")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
