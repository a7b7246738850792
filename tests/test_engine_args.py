"""Engine arguments: vLLM's own flags, precedence CLI > LIMA_ENGINE_ARGS > CPU defaults, clear errors."""

import os

import pytest

from lima.cli import serve_parser
from server.engine import EngineArgsError, build_engine_args, cpu_thread_binding, explicit_args

GiB = 1024**3


def test_every_vllm_flag_is_accepted_by_lima_serve() -> None:
    args = serve_parser().parse_args(
        ["--tensor-parallel-size", "2", "--max-model-len", "1024", "--enable-prefix-caching", "--port", "9"]
    )
    assert (args.tensor_parallel_size, args.max_model_len, args.port) == (2, 1024, 9)


def test_explicit_args_returns_only_what_was_typed() -> None:
    parser = serve_parser()
    assert explicit_args(parser, ["--max-model-len", "1024"]) == {"max_model_len": 1024}
    assert parser.parse_args([]).max_model_len is None  # defaults restored afterwards


def test_cli_beats_settings_beats_cpu_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    args = build_engine_args(
        "/models/m", {"max_model_len": 2048, "seed": 3}, {"max_model_len": 1024, "port": 1}, 2 * GiB
    )
    assert (args.max_model_len, args.seed, args.served_model_name) == (1024, 3, "m")
    assert args.kv_cache_memory_bytes == 2 * GiB and args.enforce_eager is True
    chosen = build_engine_args("/models/m", {"gpu_memory_utilization": 0.3, "enforce_eager": False}, {}, GiB)
    assert chosen.kv_cache_memory_bytes is None and chosen.enforce_eager is False


def test_unknown_engine_setting_is_refused_by_name() -> None:
    with pytest.raises(EngineArgsError, match="tensor_paralel_size"):
        build_engine_args("/models/m", {"tensor_paralel_size": 2}, {}, GiB)


def test_thread_binding_splits_allowed_cores_per_rank() -> None:
    cores = sorted(os.sched_getaffinity(0))
    assert cpu_thread_binding(1) == ",".join(map(str, cores))
    if len(cores) >= 2:
        assert cpu_thread_binding(2).count("|") == 1
    with pytest.raises(EngineArgsError, match="at least one core per rank"):
        cpu_thread_binding(len(cores) + 1)


def test_multi_node_flags_pass_through_to_vllm() -> None:
    """Serving past one box is vLLM's own: pipeline (and tensor) parallelism over a Ray cluster. (This CPU has 2
    cores, one per rank, so the sizes here are small; on GPUs the README's recipe uses TP 8 x PP 2.)"""
    argv = ["--pipeline-parallel-size", "2", "--distributed-executor-backend", "ray"]
    args = build_engine_args("/models/lima-65b", {}, explicit_args(serve_parser(), argv), GiB)
    assert (args.pipeline_parallel_size, args.distributed_executor_backend) == (2, "ray")
