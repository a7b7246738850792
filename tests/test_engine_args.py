"""Engine arguments: vLLM's own flags, precedence CLI > LIMA_ENGINE_ARGS > CPU defaults, clear errors."""

import os
from pathlib import Path

import pytest
from torch._inductor.runtime.cache_dir_utils import default_cache_dir

from lima.cli.serve import serve_parser
from server.core.engine.args import (
    EngineArgsError,
    build_engine_args,
    check_lora_modules,
    cpu_defaults,
    cpu_dtype,
    cpu_flags,
    cpu_thread_binding,
    explicit_args,
    lora_module_paths,
)

GiB = 1024**3
CACHE = Path("/data/compile-cache")
# The flags of the two CPU kinds this project's machines have (abridged /proc/cpuinfo `flags`).
AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni"})
NATIVE_BF16 = {
    "avx512-bf16": AVX2_ONLY | {"avx512_bf16"},
    "amx": AVX2_ONLY | {"avx512_bf16", "amx_tile", "amx_bf16"},
    "arm": frozenset({"fp", "asimd", "sve", "bf16"}),
}

pytestmark = pytest.mark.usefixtures("restored_environment")  # build_engine_args sets environment variables


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
        "/models/m", {"max_model_len": 2048, "seed": 3}, {"max_model_len": 1024, "port": 1}, 2 * GiB, CACHE
    )
    assert (args.max_model_len, args.seed, args.served_model_name) == (1024, 3, "m")
    assert args.kv_cache_memory_bytes == 2 * GiB and args.enforce_eager is False
    chosen = build_engine_args("/models/m", {"gpu_memory_utilization": 0.3, "enforce_eager": True}, {}, GiB, CACHE)
    assert chosen.kv_cache_memory_bytes is None and chosen.enforce_eager is True


def test_unknown_engine_setting_is_refused_by_name() -> None:
    with pytest.raises(EngineArgsError, match="tensor_paralel_size"):
        build_engine_args("/models/m", {"tensor_paralel_size": 2}, {}, GiB, CACHE)


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
    args = build_engine_args("/models/lima-65b", {}, explicit_args(serve_parser(), argv), GiB, CACHE)
    assert (args.pipeline_parallel_size, args.distributed_executor_backend) == (2, "ray")


def test_float32_without_native_bf16_the_checkpoints_dtype_with_it() -> None:
    assert cpu_dtype("auto", AVX2_ONLY) == "float32"
    for kind, flags in NATIVE_BF16.items():
        assert cpu_dtype("auto", flags) == "auto", kind  # the checkpoint's own (bf16 for SmolLM2)
    for chosen in ("bfloat16", "float32", "float16"):  # the user's choice always wins
        assert cpu_dtype(chosen, AVX2_ONLY) == cpu_dtype(chosen, NATIVE_BF16["amx"]) == chosen


def test_cpu_defaults_pick_the_dtype_from_the_flags() -> None:
    assert cpu_defaults({}, GiB, CACHE, AVX2_ONLY, {})[0]["dtype"] == "float32"
    assert cpu_defaults({}, GiB, CACHE, NATIVE_BF16["amx"], {})[0]["dtype"] == "auto"
    assert cpu_defaults({"dtype": "bfloat16"}, GiB, CACHE, AVX2_ONLY, {})[0]["dtype"] == "bfloat16"


def test_cpu_defaults_compile_and_keep_the_compiled_code_with_the_data() -> None:
    kwargs, env = cpu_defaults({}, GiB, CACHE, AVX2_ONLY, {})
    assert kwargs["enforce_eager"] is False  # as close to float32 as eager, and faster (README, bench/logprobs.py)
    assert env == {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_USE_AOT_COMPILE": "0",
                   "TORCHINDUCTOR_CACHE_DIR": str(CACHE)}
    # torch fills its /tmp default in at import: that is not a choice, the data dir's cache replaces it
    _, prefilled = cpu_defaults({}, GiB, CACHE, AVX2_ONLY, {"TORCHINDUCTOR_CACHE_DIR": default_cache_dir()})
    assert prefilled["TORCHINDUCTOR_CACHE_DIR"] == str(CACHE)
    _, chosen = cpu_defaults({}, GiB, CACHE, AVX2_ONLY, {"TORCHINDUCTOR_CACHE_DIR": "/mine"})
    assert "TORCHINDUCTOR_CACHE_DIR" not in chosen
    _, eager = cpu_defaults({"enforce_eager": True}, GiB, CACHE, AVX2_ONLY, {})
    assert eager == {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    _, tp2 = cpu_defaults({"tensor_parallel_size": 2}, GiB, CACHE, AVX2_ONLY, {})
    assert "VLLM_CPU_OMP_THREADS_BIND" in tp2


def test_cpu_flags_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx2 avx512_bf16 amx_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu avx2 avx512_bf16 amx_bf16\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()  # unreadable: no native bf16 assumed, float32


def test_lora_modules_are_read_as_vllm_reads_them_and_checked_before_the_engine(tmp_path: Path) -> None:
    given = explicit_args(serve_parser(), ["--lora-modules", "a=/x/a", '{"name": "b", "path": "/x/b"}'])
    assert [(m.name, m.path) for m in lora_module_paths(given["lora_modules"])] == [("a", "/x/a"), ("b", "/x/b")]
    with pytest.raises(EngineArgsError, match="name=path"):
        lora_module_paths(["{not json"])
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    modules = lora_module_paths([f"a={adapter}"])
    with pytest.raises(EngineArgsError, match="--enable-lora"):
        check_lora_modules(modules, build_engine_args("/models/m", {}, {}, GiB, CACHE))
    with pytest.raises(EngineArgsError, match=r"adapter_config\.json"):
        check_lora_modules(modules, build_engine_args("/models/m", {}, {"enable_lora": True}, GiB, CACHE))
    (adapter / "adapter_config.json").write_text("{}")
    check_lora_modules(modules, build_engine_args("/models/m", {}, {"enable_lora": True}, GiB, CACHE))
