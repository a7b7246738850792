"""Where one decoded token's time goes: vLLM's engine in this process, one stream, torch's profiler and py-spy.

    python bench/profile_decode.py [--dtype auto|float32|bfloat16] [--tokens 128] [--py-spy] [engine flags as JSON]

The engine runs in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0) so that one profiler sees the scheduler, the
model, the sampler and the detokenizer together; `lima serve` runs the same engine in its own process, so the
difference between this tok/s and bench/serve.py's single-stream figure is the process hop, HTTP and SSE.
Prints: decode ms per token; torch's profiler grouped by kind of operator (self CPU time per token; the rest
of the wall time is Python); and with --py-spy, where the Python stacks are (sampled at 100 Hz) grouped by
the engine stage they are in. Sampling is LIMA's (temperature 0.7, top_p 0.9, repetition penalty 1.2).
"""

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = [{"role": "user", "content": "Explain how a refrigerator works."}]

# Operator name patterns -> kind, first match wins (aten ops and vLLM's own _C ops as torch's profiler names them).
OPERATOR_KINDS = [
    ("matmul (linear layers, lm_head)", r"^aten::(mm|addmm|matmul|linear|bmm)$|onednn|gemm|dnnl|mkldnn"),
    ("attention", r"attention|attn|paged|reshape_and_cache"),
    ("norm, rotary, activation", r"rms_norm|rotary|silu|act_and_mul|^aten::(rsqrt|pow|mean|sigmoid)$"),
    ("sampling (penalties, top-p, softmax)", r"sort|topk|cumsum|softmax|multinomial|exponential|argmax|scatter|gather"
     r"|^aten::(div_?|where|masked_fill_?|lt|gt|le|ge|eq|bincount|index_put_?|index_select)$"),
    ("copies and allocation",
     r"copy_|^aten::(to|_to_copy|empty|empty_strided|zeros|clone|contiguous|cat|fill_|resize_)$"),
]

# py-spy stack frames ("function (file:line)") -> engine stage, innermost match wins (vLLM 0.32's v1 engine).
STAGES = [
    ("sampler (penalties, top-p, sampling)", r"sampler|/sample/"),
    ("model: lm_head / logits", r"compute_logits|logits_processor|vocab_parallel_embedding"),
    ("model: linear layers", r"layers/linear\.py|layers/utils\.py"),
    ("model: attention", r"attention"),
    ("model: norms, rotary, activation", r"layernorm|rotary|activation"),
    ("model: other (layer glue)", r"\bforward\b|/models/"),
    ("input preparation", r"_prepare_inputs|_update_states|prepare_inputs|_build_attention_metadata|_preprocess"),
    ("scheduler", r"schedule|update_from_output|kv_cache_manager"),
    ("detokenizer, output processing", r"detokeni|output_processor|process_outputs|_validate_and_add_requests"),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="timed generations before profiling")
    parser.add_argument("--py-spy", action="store_true", help="also sample the Python stacks with py-spy")
    parser.add_argument("--sampled", action="store_true", help=argparse.SUPPRESS)  # set when run under py-spy
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("LIMA_DATA_DIR", ".cache/lima")))
    parser.add_argument("engine", nargs="?", default="{}", help="extra engine arguments as JSON")
    return parser.parse_args()


def kind_of(name: str, kinds: list[tuple[str, str]]) -> str:
    return next((kind for kind, pattern in kinds if re.search(pattern, name)), "other")


def torch_profile(llm, sampling, tokens: int) -> None:  # type: ignore[no-untyped-def]
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        start = time.perf_counter()
        llm.chat(PROMPT, sampling, use_tqdm=False)
        wall = time.perf_counter() - start
    per_kind: collections.Counter[str] = collections.Counter()
    per_op: collections.Counter[str] = collections.Counter()
    for event in profiler.key_averages():
        if event.key.startswith(("aten::", "_C::", "vllm::", "_C_", "torch_")) or "::" in event.key:
            per_kind[kind_of(event.key, OPERATOR_KINDS)] += event.self_cpu_time_total
            per_op[event.key] += event.self_cpu_time_total
    ms_per_token = wall * 1e3 / tokens
    print(f"\ntorch profiler, one stream, {tokens} tokens: {ms_per_token:.1f} ms per token under the profiler")
    print("| kind | ms per token | share |\n|---|---:|---:|")
    operators = sum(per_kind.values()) / 1e3 / tokens
    for kind, micros in per_kind.most_common():
        print(f"| {kind} | {micros / 1e3 / tokens:.2f} | {micros / 1e3 / tokens / ms_per_token:.0%} |")
    print(f"| Python and framework (wall - operators) | {ms_per_token - operators:.2f} | "
          f"{(ms_per_token - operators) / ms_per_token:.0%} |")
    print("\ntop operators by self CPU time (ms per token):")
    for name, micros in per_op.most_common(12):
        print(f"  {micros / 1e3 / tokens:6.2f}  {name}")


def py_spy_report(raw: Path) -> None:
    per_stage: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        if not any("generate" in frame or "_run_engine" in frame or "chat" in frame for frame in frames):
            continue  # start-up, model loading, the timed warm-up outside the sampled window
        total += int(count)
        stage = "other Python (engine loop, outputs)"
        for frame in reversed(frames):
            found = kind_of(frame, STAGES)
            if found != "other":
                stage = found
                break
        per_stage[stage] += int(count)
    print(f"\npy-spy, {total} samples while generating, by engine stage (innermost match):")
    print("| stage | share of samples |\n|---|---:|")
    for stage, count in per_stage.most_common():
        print(f"| {stage} | {count / max(total, 1):.0%} |")


def run_under_py_spy(args: argparse.Namespace) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "stacks.txt"
        command = [py_spy, "record", "--format", "raw", "--rate", "100", "--output", str(raw), "--",
                   sys.executable, __file__, "--sampled", "--dtype", args.dtype, "--tokens", str(args.tokens),
                   "--repeats", str(args.repeats), "--data-dir", str(args.data_dir), args.engine]
        subprocess.run(command, check=True)
        py_spy_report(raw)


def main() -> None:
    args = parse_args()
    if args.py_spy:
        run_under_py_spy(args)
        return
    from vllm import LLM, SamplingParams

    from model_prep.checkpoints.default_model import ensure_default_model

    engine = {"enforce_eager": True, "kv_cache_memory_bytes": 1 << 30, "dtype": args.dtype, **json.loads(args.engine)}
    llm = LLM(model=str(ensure_default_model(args.data_dir)), **engine)
    sampling = SamplingParams(max_tokens=args.tokens, ignore_eos=True, temperature=0.7, top_p=0.9,
                              repetition_penalty=1.2)
    llm.chat(PROMPT, SamplingParams(max_tokens=8), use_tqdm=False)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        llm.chat(PROMPT, sampling, use_tqdm=False)
        times.append(time.perf_counter() - start)
    best = min(times)
    print(f"\n{engine}: {args.tokens} tokens, best of {args.repeats}: {best * 1e3 / args.tokens:.1f} ms per token "
          f"({args.tokens / best:.1f} tok/s), dtype {llm.llm_engine.model_config.dtype}")
    if not args.sampled:
        torch_profile(llm, sampling, args.tokens)


if __name__ == "__main__":
    main()
