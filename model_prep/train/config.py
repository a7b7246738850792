"""What a training run is: `TrainConfig` (the paper's defaults), its presets, and config files. Imports no
torch, so commands that only read a config (and `lima prep eval`) start fast."""

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from model_prep.train.data import SAMPLE, DataFormat


class TrainConfig(BaseModel):
    """Defaults are the paper's (65B recipe); `PRESETS` holds its 7B ablation recipe."""

    model: str
    data: str = Field(str(SAMPLE), description="training rows: JSON lines or a JSON array, Parquet, a datasets id")
    data_format: DataFormat = Field("auto", description="lima, openai, sharegpt or alpaca; auto: from the first record")
    output_dir: Path = Path("artifacts/train")
    multi_turn: bool = True  # include the dialogue rows (the paper's dialogue model)
    epochs: int = Field(15, ge=1)
    learning_rate: float = Field(1e-5, gt=0)
    final_learning_rate: float = Field(1e-6, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.95)
    batch_size: int = Field(32, ge=1, description="examples per optimizer step")
    micro_batch_size: int = Field(4, ge=1, description="examples per forward pass")
    max_tokens: int = Field(2048, ge=16)
    residual_dropout: float = Field(0.3, ge=0, lt=1)
    reuse_end_of_turn: bool = False  # keep the tokenizer's own turn terminator instead of adding <EOT>
    gradient_checkpointing: bool = False
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 on GPU, float32 on CPU
    seed: int = 0
    resume_from: Path | None = None
    max_examples: int | None = Field(None, ge=1, description="use only the first N (smoke runs)")
    # LoRA instead of full fine-tuning when set: adapters of this rank on every linear layer of the blocks. A new
    # <EOT> token's rows are initialised once and saved with the base (RUN/base); the adapters learn to use them,
    # so vLLM serves every epoch's adapter unmerged from that one base.
    lora_rank: int | None = Field(None, ge=1, description="LoRA rank; unset = full fine-tuning (the paper)")
    lora_alpha: float = Field(16.0, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    # The paper's checkpoint choice: after each epoch, dev loss and sampled answers (LIMA decoding) to the dev
    # prompts are saved in epoch-NN/dev.json, for `lima prep select`.
    dev_data: str | None = Field(None, description="dev rows in any training format (the paper: 50 prompts)")
    dev_max_new_tokens: int = Field(2048, ge=1, description="answer length for dev prompts")
    # Experiment trackers through accelerate (tensorboard, wandb, mlflow, ...): loss, lr and tokens/s per step,
    # dev loss per epoch, the config as hyperparameters. TensorBoard writes to OUT/logs/<project>. Unset: the
    # installed ones of TensorBoard, and W&B when it is also configured by WANDB_API_KEY/WANDB_MODE/WANDB_PROJECT
    # (an installed but logged-out wandb would otherwise stop the run to ask for a key).
    report_to: list[str] | None = Field(None, description="trackers to log to ([] for none)")
    project: str = Field("lima", description="tracker project / run group name (W&B project)")

    @field_validator("report_to")
    @classmethod
    def trackers_installed(cls, wanted: list[str] | None) -> list[str] | None:
        if not wanted:
            return wanted
        from accelerate.tracking import get_available_trackers  # imports torch: only when trackers are named

        available = {str(tracker) for tracker in get_available_trackers()}
        missing = [name for name in wanted or [] if name not in available]
        if missing:
            raise ValueError(f"not installed: {', '.join(missing)} (installed: {', '.join(sorted(available))})")
        return wanted


PRESETS: dict[str, dict[str, Any]] = {
    "lima-65b": {"batch_size": 32, "residual_dropout": 0.3},
    "lima-7b": {"batch_size": 64, "residual_dropout": 0.2},
}


def read_config_file(path: Path) -> dict[str, Any]:
    """A TOML or YAML file of TrainConfig fields; a file that does not parse to a table is refused by name."""
    if path.suffix not in (".toml", ".yaml", ".yml"):
        raise ValueError(f"{path}: a config file is .toml, .yaml or .yml")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        import tomllib

        try:
            fields: object = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not TOML ({exc})") from exc
    else:
        import yaml

        try:
            fields = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not YAML ({' '.join(str(exc).split())})") from exc
    if not isinstance(fields, dict):
        raise ValueError(f"{path}: expected a table of fields (name = value), got {type(fields).__name__}")
    return fields


def build_config(preset: str | None, config_file: Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Preset, then the config file, then command-line flags: each later one wins."""
    fields: dict[str, Any] = dict(PRESETS[preset]) if preset else {}
    if config_file is not None:
        fields.update(read_config_file(config_file))
    fields.update({key: value for key, value in overrides.items() if value is not None})
    return TrainConfig(**fields)
