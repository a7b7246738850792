"""`lima up` as a new user meets it: one short line per phase, then the two URLs; the engine's and the page's logs
in a file under the data directory (probes left out), and Ctrl-C (SIGTERM here) stops everything it started."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from harness.live_server import free_port
from tests.conftest import TEST_DTYPE


@pytest.mark.live
def test_first_run_prints_phases_then_urls_and_logs_to_a_file(data_dir: Path, tmp_path: Path) -> None:
    port, ui_port = free_port(), free_port()
    dtype = [] if TEST_DTYPE == "auto" else ["--dtype", TEST_DTYPE]
    command = [sys.executable, "-m", "lima.cli", "up", "--port", str(port), "--ui-port", str(ui_port),
               "--data-dir", str(data_dir), "--redis-dir", str(tmp_path / "redis"),
               # room for one 8,192-token sequence of SmolLM2 in float32 (46 KB a token), the largest dtype
               "--kv-cache-memory-bytes", str(512 * 1024**2), *dtype]
    up = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 600
        while not any("Ctrl-C stops both" in line for line in lines):
            assert time.monotonic() < deadline and up.poll() is None, "".join(lines)
            lines.append(up.stdout.readline())
        shown = [line.rstrip() for line in lines if line.strip()]
        assert len(shown) <= 8, shown  # the model, the log file, the engine starting and ready, the URLs
        assert re.search(r"engine +ready in \d+ s", "\n".join(shown)), shown
        assert f"chat page  http://127.0.0.1:{ui_port}" in "\n".join(shown)
        assert f"API        http://127.0.0.1:{port}/v1" in "\n".join(shown)
        log_path = Path(next(line.split()[-1] for line in shown if line.startswith("lima up: logs")))
        assert log_path.parent == data_dir / "logs"

        assert httpx.get(f"http://127.0.0.1:{ui_port}/", timeout=30).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=30).status_code == 200
        for _ in range(5):  # probes, as Kubernetes would send them
            httpx.get(f"http://127.0.0.1:{port}/ready", timeout=30)
        log = log_path.read_text()
        assert "engine ready: serving SmolLM2-135M-Instruct" in log  # the engine's own log went to the file
        assert "enforce_eager=True" in log  # a first start does not wait for compilation (`lima serve` compiles)
        assert '"GET /v1/models' in log and '"GET /ready' not in log  # probes stay out of the access log

        children = psutil.Process(up.pid).children(recursive=True)
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) == 0
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()


def test_up_runs_eager_unless_the_user_chose() -> None:
    from lima.cli.up import eager_unless_chosen
    from server.core.settings import ServerSettings

    plain = ServerSettings()
    assert eager_unless_chosen(["--max-model-len", "2048"], plain) == ["--enforce-eager", "--max-model-len", "2048"]
    assert eager_unless_chosen(["--no-enforce-eager"], plain) == ["--no-enforce-eager"]
    chosen = ServerSettings(engine_args={"enforce_eager": False})
    assert eager_unless_chosen([], chosen) == []
