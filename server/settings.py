"""Server settings: environment (LIMA_*), then `lima serve` flags on top. vLLM's own flags live in engine.py."""

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIMA_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Where the embedded default model is converted once and cached.
    data_dir: Path = Path("~/.cache/lima").expanduser()
    # Checkpoint directory to serve; empty means the embedded default (SmolLM2-135M-Instruct).
    model: str | None = None
    # Any of vLLM's engine arguments, as JSON: LIMA_ENGINE_ARGS='{"tensor_parallel_size": 2}'.
    # Flags given to `lima serve` win over these.
    engine_args: dict[str, Any] = Field(default_factory=dict)
    # Bodies above this are refused with 413 before they are parsed.
    max_request_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    # Upper bound on `n` (choices per request): each choice is a full generation.
    max_choices: int = Field(16, ge=1)
    # KV-cache size on the CPU backend when neither --kv-cache-memory-bytes nor --gpu-memory-utilization
    # is given: vLLM's default share of a NUMA node fails on small machines.
    cpu_kv_cache_bytes: int = Field(2 * 1024**3, ge=64 * 1024**2)
    log_level: str = "info"
