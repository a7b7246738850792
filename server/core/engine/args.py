"""The vLLM engine's arguments: all of vLLM's flags, LIMA_ENGINE_ARGS, and the CPU defaults (dtype from the
CPU's flags, KV cache size, thread binding)."""

import argparse
import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.openai.models.protocol import LoRAModulePath
from vllm.utils.argparse_utils import FlexibleArgumentParser

log = logging.getLogger(__name__)

ENGINE_ARG_NAMES = frozenset(f.name for f in dataclasses.fields(AsyncEngineArgs))


class EngineArgsError(ValueError):
    """Engine settings that vLLM would not accept, reported before the engine starts."""


def add_engine_cli_args(parser: FlexibleArgumentParser) -> None:
    """Every vLLM engine flag, exactly as vLLM defines it; `--model` defaults to the embedded model."""
    AsyncEngineArgs.add_cli_args(parser)
    parser.set_defaults(model=None)


def explicit_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict[str, Any]:
    """Only the options the user typed, so settings and CPU defaults fill in everything else."""
    saved = {action.dest: action.default for action in parser._actions}
    saved_parser_defaults, parser._defaults = parser._defaults, {}
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    try:
        namespace, _ = parser.parse_known_args(argv)
    finally:
        parser._defaults = saved_parser_defaults
        for action in parser._actions:
            action.default = saved[action.dest]
    return vars(namespace)


# CPU flags (Linux /proc/cpuinfo) that mean bf16 arithmetic in hardware: x86 AVX512-BF16 and AMX, Arm's BF16.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first processor's feature flags (`flags` on x86, `Features` on Arm); empty when unreadable."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return frozenset()
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    return bool(NATIVE_BF16_FLAGS & (cpu_flags() if flags is None else flags))


def cpu_dtype(requested: str, flags: frozenset[str]) -> str:
    """The dtype to serve in on this CPU: the user's choice, else the checkpoint's (`auto`) where bf16 is native,
    else float32 (bf16 is emulated without AVX512-BF16/AMX: 3.4x slower, STACK.md)."""
    if requested != "auto" or cpu_has_native_bf16(flags):
        return requested
    return "float32"


def cpu_thread_binding(tensor_parallel_size: int) -> str:
    """VLLM_CPU_OMP_THREADS_BIND for TP ranks: the allowed cores split into equal contiguous groups."""
    cores = sorted(os.sched_getaffinity(0))
    per_rank = len(cores) // tensor_parallel_size
    if per_rank == 0:
        raise EngineArgsError(
            f"tensor_parallel_size={tensor_parallel_size} needs at least one core per rank; "
            f"this process may use {len(cores)}"
        )
    groups = [cores[rank * per_rank : (rank + 1) * per_rank] for rank in range(tensor_parallel_size)]
    return "|".join(",".join(map(str, group)) for group in groups)


def cpu_defaults(
    kwargs: dict[str, Any], kv_cache_bytes: int, compile_cache_dir: Path, flags: frozenset[str] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Engine arguments and environment variables that make vLLM's CPU backend start and run fast here
    (measured: docs/benchmarks.md, "CPU serving speed"); each is left out when the user chose it."""
    kwargs = dict(kwargs)
    requested = kwargs.get("dtype", "auto")
    kwargs["dtype"] = cpu_dtype(requested, cpu_flags() if flags is None else flags)
    if kwargs["dtype"] != requested:
        log.info("CPU has no native bf16: serving in %s", kwargs["dtype"])
    memory_chosen = {"kv_cache_memory_bytes", "gpu_memory_utilization"} & kwargs.keys()
    if not memory_chosen and not environ.get("VLLM_CPU_KVCACHE_SPACE"):
        kwargs["kv_cache_memory_bytes"] = kv_cache_bytes
    env = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    # Compiled, vLLM's own default: its log-probabilities are as close to float32's as eager's are, and it is
    # faster (docs/benchmarks.md, "CPU serving speed": bench/logprobs.py, bench/serve.py). `lima up` starts eager
    # instead.
    kwargs.setdefault("enforce_eager", False)
    if not kwargs["enforce_eager"]:
        # vLLM's own AOT artifacts fail to load on the CPU backend ("'function' object has no attribute
        # 'finalize_loading'"), so every start would compile again; inductor's cache, kept with the data, works.
        env["VLLM_USE_AOT_COMPILE"] = "0"
    tp = int(kwargs.get("tensor_parallel_size", 1))
    if tp > 1:
        env["VLLM_CPU_OMP_THREADS_BIND"] = cpu_thread_binding(tp)
    env = {name: value for name, value in env.items() if name not in environ}
    if not kwargs["enforce_eager"] and not inductor_cache_chosen(environ):
        env["TORCHINDUCTOR_CACHE_DIR"] = str(compile_cache_dir)
    return kwargs, env


def inductor_cache_chosen(environ: Mapping[str, str]) -> bool:
    """Whether TORCHINDUCTOR_CACHE_DIR names a directory someone chose: importing torch fills in its default
    (/tmp/torchinductor_USER, lost at reboot) when it is unset."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    chosen = environ.get("TORCHINDUCTOR_CACHE_DIR")
    return chosen is not None and Path(chosen).resolve() != Path(default_cache_dir()).resolve()


def build_engine_args(
    model: str, settings_args: dict[str, Any], cli_args: dict[str, Any], cpu_kv_cache_bytes: int,
    compile_cache_dir: Path, log_prompts: bool = False,
) -> AsyncEngineArgs:
    """Engine arguments by precedence: CLI flags > LIMA_ENGINE_ARGS > CPU defaults > vLLM's defaults. vLLM's
    request log (`enable_log_requests`) stays off unless asked for, or --log-prompts is on."""
    unknown = sorted(settings_args.keys() - ENGINE_ARG_NAMES)
    if unknown:
        raise EngineArgsError(f"unknown vLLM engine arguments in LIMA_ENGINE_ARGS: {', '.join(unknown)}")
    kwargs = {**settings_args, **{k: v for k, v in cli_args.items() if k in ENGINE_ARG_NAMES}}
    kwargs["model"] = model
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        kwargs, env = cpu_defaults(kwargs, cpu_kv_cache_bytes, compile_cache_dir)
        if env:
            log.info("CPU defaults: %s", " ".join(f"{name}={value}" for name, value in sorted(env.items())))
            os.environ.update(env)  # read by the engine processes vLLM starts
    kwargs.setdefault("served_model_name", Path(model).name)
    if log_prompts:
        kwargs["enable_log_requests"] = True
    return AsyncEngineArgs(**kwargs)


def lora_module_paths(values: Sequence[str]) -> list[LoRAModulePath]:
    """--lora-modules values as vLLM reads them: `name=path`, or JSON with name, path and base_model_name."""
    modules = []
    for value in values:
        try:
            if "=" in value and "," not in value:
                name, path = value.split("=", 1)
                modules.append(LoRAModulePath(name, path))
            else:
                modules.append(LoRAModulePath(**json.loads(value)))
        except (ValueError, TypeError) as exc:
            raise EngineArgsError(f"--lora-modules {value!r}: expected name=path or JSON with name and path "
                                  f"({exc})") from exc
    return modules


def check_lora_modules(modules: Sequence[LoRAModulePath], engine_args: AsyncEngineArgs) -> None:
    """Adapters need vLLM's LoRA support switched on, and each must exist, before the engine loads."""
    if modules and not engine_args.enable_lora:
        raise EngineArgsError("--lora-modules needs --enable-lora (and --max-lora-rank at least the adapters' rank)")
    for module in modules:
        if not (Path(module.path) / "adapter_config.json").is_file():
            raise EngineArgsError(f"--lora-modules {module.name}={module.path}: no adapter_config.json there")
