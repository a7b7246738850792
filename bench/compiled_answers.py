"""Which part of vLLM's compiled CPU path changes the answers? Greedy answers of one engine configuration.

    python bench/compiled_answers.py '{"enforce_eager": true}'              # the default: right
    python bench/compiled_answers.py '{}'                                    # compiled (inductor): wrong
    VLLM_CPU_CI_ENV=1 python bench/compiled_answers.py '{}'                  # traced by dynamo, run eagerly
    python bench/compiled_answers.py '{"enforce_eager": true, "compilation_config": {"custom_ops": ["none"]}}'
    python bench/compiled_answers.py '{"dtype": "float32"}'                  # compiled in float32
    python bench/compiled_answers.py '{"compilation_config": {"custom_ops": ["all"]}}'  # compiled, vLLM's kernels

The embedded default model in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0), its compile caches in a fresh
temporary directory (so that no earlier compilation is reused), three prompts answered one at a time and then
as one batch, greedy, 24 tokens. Prints the start-up time and each answer. Compiling vLLM's way switches its
custom CPU kernels off (`custom_ops: none`) and hands the native PyTorch layers to inductor; the rows above
separate tracing, native layers, inductor's generated code and the dtype.
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
os.environ["VLLM_USE_AOT_COMPILE"] = "0"  # vLLM 0.32's CPU backend cannot load what it saves
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.", "How do I sort a list in Python?"]


def main() -> None:
    from vllm import LLM, SamplingParams

    from model_prep.checkpoints.default_model import ensure_default_model

    engine_kwargs = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    model = ensure_default_model(Path(os.environ.get("LIMA_DATA_DIR", ".cache/lima")))
    with tempfile.TemporaryDirectory(prefix="compiled-answers-") as caches:
        os.environ["VLLM_CACHE_ROOT"] = f"{caches}/vllm"
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = f"{caches}/inductor"
        started = time.perf_counter()
        llm = LLM(model=str(model), max_model_len=2048, kv_cache_memory_bytes=256 << 20, **engine_kwargs)
        print(f"start-up {time.perf_counter() - started:.0f} s", flush=True)
        greedy = SamplingParams(temperature=0, max_tokens=24)
        for prompt in PROMPTS:
            answer = llm.chat([{"role": "user", "content": prompt}], greedy, use_tqdm=False)[0]
            print(f"one:   {answer.outputs[0].text!r}", flush=True)
        batch = llm.chat([[{"role": "user", "content": prompt}] for prompt in PROMPTS], greedy, use_tqdm=False)
        for answer in batch:
            print(f"batch: {answer.outputs[0].text!r}", flush=True)


if __name__ == "__main__":
    main()
