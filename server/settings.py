"""Server settings: environment (LIMA_*), then `lima serve` flags on top. vLLM's own flags live in engine.py."""

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    # An empty variable (as docker-compose passes an unset one) means "not set".
    model_config = SettingsConfigDict(env_prefix="LIMA_", extra="ignore", populate_by_name=True,
                                      env_ignore_empty=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Where the embedded default model is converted once and cached.
    data_dir: Path = Field(default_factory=lambda: Path("~/.cache/lima").expanduser())  # HOME at start, not import
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

    # Conversation store. REDIS_URL (redis://, rediss://, unix://, redis+sentinel://) names a shared server;
    # without it an embedded redis-server runs in `redis_dir` (default DATA_DIR/redis) with append-only files.
    redis_url: str | None = Field(None, validation_alias=AliasChoices("LIMA_REDIS_URL", "REDIS_URL", "redis_url"))
    redis_dir: Path | None = None
    # Append-only file fsync policy of the embedded server: `always` survives power loss, `everysec` a crash
    # of the process (the default: a reply is only sent after the write reached the kernel).
    redis_appendfsync: Literal["always", "everysec", "no"] = "everysec"
    # Conversations and responses expire this long after their last write; 0 keeps them forever.
    history_ttl_seconds: int = Field(30 * 24 * 3600, ge=0)
    # Items per conversation; a turn that would pass it is refused (400), never silently trimmed.
    history_max_items: int = Field(1000, ge=2, le=5000)
    # API keys: user id -> key (or "sha256:<hex>" of the key). None configured = one local user, no auth.
    api_keys: dict[str, str] = Field(default_factory=dict)
    # A file of `user_id key` lines (same key forms, # comments), merged with api_keys.
    api_keys_file: Path | None = None
    # Back-pressure: generations in progress or queued beyond this get 503 + Retry-After at once.
    # Unset: 4 x the engine's max_num_seqs (its batch), so a queue never holds more than ~3 batches' wait.
    max_pending_requests: int | None = Field(None, ge=1)
    # Per-user token bucket in Redis (all replicas share it): requests per minute and burst; unset = no limit.
    rate_limit_per_minute: int | None = Field(None, ge=1)
    rate_limit_burst: int | None = Field(None, ge=1)
    # SIGTERM: stop accepting, let in-flight requests finish for up to this long, then abort what is left
    # (a cut answer is stored as incomplete), flush, stop the engine and exit 0.
    shutdown_timeout_seconds: float = Field(30.0, ge=0)

    @property
    def embedded_redis_dir(self) -> Path:
        return self.redis_dir or self.data_dir / "redis"
