"""Server settings, declared once: environment (LIMA_*), then `lima serve` flags on top. vLLM's own flags live
in engine/args.py.

Each field's description, flag and shown default are here; `lima serve`'s flags are made from them
(`add_flags`), and so is the table in docs/serving.md (`python -m server.core.settings` prints it; a test keeps
the two equal).
"""

from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, Literal, get_origin

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

GROUPS = {"server": "server (defaults from LIMA_* environment variables)", "history": "conversation store and users",
          "limits": "load limits and shutdown"}


IPNetwork = IPv4Network | IPv6Network


def proxy_networks(listed: str | None) -> tuple[IPNetwork, ...]:
    """`10.0.0.1, 192.168.0.0/16` -> the networks (an address is a network of one)."""
    networks = []
    for entry in (listed or "").split(","):
        if entry.strip():
            try:
                networks.append(ip_network(entry.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"--trusted-proxies: {entry.strip()!r} is neither an IP address nor a CIDR "
                                 "network") from exc
    return tuple(networks)


def setting(default: Any = None, description: str = "", *, flag: str | None = "", group: str = "server",
            shown: str | None = None, env: tuple[str, ...] = (), **field: Any) -> Any:
    """A field with what the CLI and the docs show: `flag` ("" = from the name, None = environment only), its
    flag group, the default as shown (`shown`) and the environment variable when it is not LIMA_<NAME>."""
    if "default_factory" not in field:
        field["default"] = default
    shows: dict[str, Any] = {"flag": flag, "group": group, "shown": shown, "env": list(env)}
    return Field(description=description, json_schema_extra=shows, **field)


class ServerSettings(BaseSettings):
    # An empty variable (as docker-compose passes an unset one) means "not set".
    model_config = SettingsConfigDict(env_prefix="LIMA_", extra="ignore", populate_by_name=True,
                                      env_ignore_empty=True)

    host: str = setting("127.0.0.1", "bind address")
    port: int = setting(8000, "port", ge=0, le=65535)
    model: str | None = setting(None, "checkpoint directory to serve", shown="embedded SmolLM2-135M-Instruct")
    data_dir: Path = setting(description="where the default model is converted once (and the embedded Redis, "
                             "the `lima up` logs)", shown="`~/.cache/lima`",
                             default_factory=lambda: Path("~/.cache/lima").expanduser())  # HOME at start
    max_request_bytes: int = setting(4 * 1024 * 1024, "larger bodies get 413 before parsing", shown="4 MiB", ge=1024)
    max_choices: int = setting(16, "upper bound on `n` (each choice is a full generation)", ge=1)
    loop_guard: int = setting(
        0, "stop an answer once one of its sentences has been written this many times (finish_reason `stop`, "
        "stop_reason `repetition`); a request's `loop_guard` field overrides it; 0 = off, as OpenAI's API",
        ge=0, le=100)
    # Not `log_level`: vLLM's own --log-level would share the flag's destination.
    uvicorn_log_level: str = setting("info", "HTTP log level", env=("LIMA_LOG_LEVEL",),
                                     validation_alias=AliasChoices("LIMA_LOG_LEVEL", "uvicorn_log_level"))
    log_prompts: bool = setting(
        False, "debugging only: log every prompt's text (and vLLM's request log); off, no prompt, answer or key "
        "is logged")
    trusted_proxies: str | None = setting(
        None, "comma-separated IPs or CIDRs of reverse proxies whose X-Forwarded-For names the client (for the "
        "failed-authentication throttle); otherwise the peer's address is the client's", shown="none")
    cpu_kv_cache_bytes: int = setting(
        2 * 1024**3, "KV cache on the CPU backend when neither --kv-cache-memory-bytes nor "
        "--gpu-memory-utilization is given (vLLM's default share of a NUMA node fails on small machines)",
        flag=None, shown="2 GiB", ge=64 * 1024**2)
    enable_auto_tool_choice: bool = setting(
        False, "tool_choice \"auto\": read function calls out of the model's answer with --tool-call-parser "
        "(vLLM's flags and meaning)")
    tool_call_parser: str | None = setting(None, "vLLM's tool parser for \"auto\", e.g. `hermes`, `llama3_json`, "
                                           "`mistral` (their list: vLLM's docs)", shown="none")
    lora_modules: list[str] = setting(
        description="LoRA adapters to serve beside the base model, each `name=path` or vLLM's JSON form (needs "
        "--enable-lora; --max-lora-rank at least their rank); a request picks one by its `model`",
        shown="none", default_factory=list)
    engine_args: dict[str, Any] = setting(
        description="any of vLLM's engine arguments as JSON, e.g. `{\"max_model_len\": 4096}`; flags win",
        flag=None, shown="vLLM's", default_factory=dict)

    redis_url: str | None = setting(
        None, "shared Redis: `redis://`, `rediss://`, `unix://`, `redis+sentinel://h1:26379,h2:26379/master[/db]`, "
        "`redis+cluster://h1:p1,h2:p2`",
        group="history", shown="embedded", env=("REDIS_URL", "LIMA_REDIS_URL"),
        validation_alias=AliasChoices("LIMA_REDIS_URL", "REDIS_URL", "redis_url"))
    redis_dir: Path | None = setting(None, "files of the embedded redis-server (socket, append-only file, log)",
                                     group="history", shown="`DATA_DIR/redis`")
    redis_appendfsync: Literal["always", "everysec", "no"] = setting(
        "everysec", "embedded server's fsync policy: `always` survives power loss, `everysec` a crash of the "
        "process", flag=None, group="history")
    history_ttl_seconds: int = setting(30 * 24 * 3600, "conversations and responses expire this long after their "
                                       "last write; 0 = never", group="history", shown="2592000 (30 days)", ge=0)
    history_max_items: int = setting(1000, "items per conversation; a turn past it is refused (400), never trimmed",
                                     group="history", ge=2, le=5000)
    max_conversations_per_user: int = setting(
        10000, "conversations a user may hold; creating one more is refused (403 `quota_exceeded`) until they "
        "delete some (expired ones do not count); 0 = no cap", group="history", ge=0)
    max_stored_bytes_per_user: int = setting(
        256 * 1024**2, "bytes of conversation items and stored responses a user may hold (counted in Redis as they "
        "are written and removed); a write past it is refused (403 `quota_exceeded`); 0 = no cap",
        group="history", shown="256 MiB", ge=0)
    api_keys: dict[str, str] = setting(description='JSON `{"user_id": "key", ...}` (a key may be `sha256:<hex>`), '
                                       "merged with the file; none = one local user, no auth", flag=None,
                                       group="history", shown="none", default_factory=dict)
    api_keys_file: Path | None = setting(None, "`user_id key` lines (`key` may be `sha256:<hex>`, # comments)",
                                         group="history", shown="none")

    max_pending_requests: int | None = setting(
        None, "generations running or queued before 503 + Retry-After", group="limits",
        shown="4 x max_num_seqs", ge=1)
    rate_limit_per_minute: int | None = setting(None, "requests per user and minute, shared in Redis by all "
                                                "replicas", group="limits", shown="none", ge=1)
    rate_limit_burst: int | None = setting(None, "token bucket size", group="limits", shown="the per-minute rate",
                                           ge=1)
    auth_failures_per_window: int = setting(
        10, "wrong API keys from one client address before its requests get 429 until the window ends (counted "
        "in Redis, shared by all replicas); 0 = no limit", group="limits", ge=0)
    auth_failure_window_seconds: int = setting(300, "the window of --auth-failures-per-window, from the first "
                                               "failure", group="limits", ge=1)
    shutdown_timeout_seconds: float = setting(
        30.0, "on SIGTERM, how long in-flight requests may finish (then a cut answer is stored as incomplete)",
        group="limits", ge=0)

    @model_validator(mode="after")
    def _parser_for_auto(self) -> "ServerSettings":
        if self.enable_auto_tool_choice and not self.tool_call_parser:
            raise ValueError("--enable-auto-tool-choice needs --tool-call-parser NAME")
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str | None) -> str | None:
        proxy_networks(value)  # a ValueError names the entry that is neither an address nor a network
        return value

    @property
    def trusted_networks(self) -> tuple[IPNetwork, ...]:
        return proxy_networks(self.trusted_proxies)

    @property
    def auto_tool_parser(self) -> str | None:
        """The parser name when "auto" tool choice is on, else None."""
        return self.tool_call_parser if self.enable_auto_tool_choice else None

    @property
    def embedded_redis_dir(self) -> Path:
        return self.redis_dir or self.data_dir / "redis"


def extra(field: FieldInfo) -> dict[str, Any]:
    return field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}


def flag_of(name: str, field: FieldInfo) -> str | None:
    declared = extra(field).get("flag", "")
    return None if declared is None else declared or f"--{name.replace('_', '-')}"


def flag_fields() -> dict[str, FieldInfo]:
    """The settings that `lima serve` takes as flags (`model` is vLLM's own flag, given to the engine too)."""
    return {name: field for name, field in ServerSettings.model_fields.items()
            if flag_of(name, field) and name != "model"}


def environment_names(name: str, field: FieldInfo) -> tuple[str, ...]:
    return tuple(extra(field).get("env") or ()) or (f"LIMA_{name.upper()}",)


def shown_default(field: FieldInfo) -> str:
    return str(extra(field).get("shown") or field.default)


def add_flags(parser: Any) -> dict[str, str]:
    """`lima serve`'s own flags, in their groups, from the settings; returns {flag destination: setting name}."""
    groups = {key: parser.add_argument_group(title) for key, title in GROUPS.items()}
    for name, field in flag_fields().items():
        shown = f"{field.description} ({' or '.join(environment_names(name, field))}; default {shown_default(field)})"
        group = groups[extra(field).get("group", "server")]
        if field.annotation is bool:  # a switch, as vLLM's own
            group.add_argument(flag_of(name, field), dest=name, action="store_const", const=True, help=shown)
            continue
        kind = next((t for t in (int, float, Path) if t in getattr(field.annotation, "__args__", (field.annotation,))),
                    str)
        many = "+" if get_origin(field.annotation) is list else None  # a list: its values after the flag
        group.add_argument(flag_of(name, field), dest=name, type=kind, nargs=many, help=shown)
    return {name: name for name in flag_fields()}


def table() -> str:
    """The docs' table of settings: flag, environment variable, default, meaning."""
    rows = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for name, field in ServerSettings.model_fields.items():
        flag = flag_of(name, field)
        names = " or ".join(f"`{env}`" for env in environment_names(name, field))
        rows.append(f"| {f'`{flag}`' if flag else ''} | {names} | {shown_default(field)} | {field.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
