"""An engine that cannot start stops the server with status 1 and says why, instead of hanging half-alive."""

from pathlib import Path

from tests.live_server import LiveServer


def test_engine_failure_exits_with_status_1_and_the_reason(tiny_model_dir: Path, tmp_path: Path) -> None:
    # 1 MiB of KV cache cannot hold one sequence of the model's 512 tokens: vLLM refuses to start.
    server = LiveServer(
        ["--model", str(tiny_model_dir), "--kv-cache-memory-bytes", str(1024**2)], tmp_path / "fail.log"
    )
    status = server.process.wait(timeout=300)
    log = server.log_tail(1_000_000)
    server.stop()
    assert status == 1, log[-3000:]
    assert "the engine failed to start" in log
