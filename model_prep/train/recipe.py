"""LIMA fine-tuning: AdamW (0.9, 0.95), weight decay 0.1, lr 1e-5 falling linearly to 1e-6 with no warm-up,
32 examples per optimizer step by gradient accumulation, residual dropout 0 -> 0.3 over the layers, 15
epochs, a checkpoint after each epoch. The same loop runs on one CPU and, through accelerate, on many GPUs.

Loss is the mean over the assistant tokens of the whole batch (not of each micro-batch), so accumulation
gives the same gradient as one large batch. Batches are length-grouped: each batch is sorted by length before
it is cut into micro-batches, so little compute goes to padding and no example attends to another.
"""

import contextlib
import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any, cast

import torch
from accelerate import Accelerator
from accelerate.tracking import get_available_trackers
from accelerate.utils import ProjectConfiguration
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from model_prep.chat_format import IGNORE, LIMA_EOT, Example, encode_example
from model_prep.checkpoints.atomic import write_atomically
from model_prep.checkpoints.decoding import generation_config
from model_prep.train.batching import micro_batches, summed_loss
from model_prep.train.config import TrainConfig
from model_prep.train.data import Conversation, DataError, load_conversations
from model_prep.train.dev_set import DevSet, evaluate
from model_prep.train.end_of_turn import install_end_of_turn, spread_rows
from model_prep.train.residual_dropout import add_residual_dropout

log = logging.getLogger(__name__)
STATE_FILE = "trainer_state.pt"


def linear_decay(total_steps: int, start: float, end: float) -> Any:
    """Multiplier of `start` at each optimizer step: exactly start at the first step, end at the last."""
    def factor(step: int) -> float:
        if total_steps <= 1:
            return 1.0
        return 1.0 + (end / start - 1.0) * min(step, total_steps - 1) / (total_steps - 1)

    return factor


def optimizer_for(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norms and biases)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in parameters if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=config.adam_betas)


def batches(examples: list[Example], batch_size: int, seed: int) -> list[list[Example]]:
    """One epoch's optimizer batches, shuffled by `seed`; the last may be smaller."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [[examples[i] for i in order[start:start + batch_size]] for start in range(0, len(order), batch_size)]


def training_conversations(config: TrainConfig) -> list[Conversation]:
    return load_conversations(config.data, config.multi_turn, config.data_format)[: config.max_examples]


def encode_all(config: TrainConfig, tokenizer: PreTrainedTokenizerBase,
               conversations: list[Conversation] | None = None) -> list[Example]:
    if conversations is None:
        conversations = training_conversations(config)
    examples = [encode_example(tokenizer, c.messages, config.max_tokens) for c in conversations]
    kept = [e for e in examples if e is not None]
    if len(kept) < len(examples):
        log.warning("%d conversations had no assistant token within %d tokens and were left out",
                     len(examples) - len(kept), config.max_tokens)
    if not kept:
        raise DataError(f"{config.data}: no conversation has an assistant token within {config.max_tokens} tokens")
    return kept


LORA_BASE = "base"  # RUN/base: the base model with <EOT> added, which every epoch's adapter applies to


def with_lora(model: torch.nn.Module, config: TrainConfig, base: str) -> torch.nn.Module:
    """LoRA adapters on every linear layer of the blocks, and nothing else, so that vLLM serves them unmerged
    (its loader takes no embedding or output rows). `base` is the model they apply to, named in adapter_config."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if config.resume_from:
        return PeftModel.from_pretrained(model, config.resume_from, is_trainable=True)
    adapted = get_peft_model(model, LoraConfig(
        # peft types alpha as an int; a float works, and is what the config holds
        r=cast(int, config.lora_rank), lora_alpha=cast(Any, config.lora_alpha), lora_dropout=config.lora_dropout,
        target_modules="all-linear", task_type="CAUSAL_LM",
    ))
    adapted.peft_config["default"].base_model_name_or_path = base
    return adapted


def lora_base(config: TrainConfig) -> Path:
    """Where a LoRA run keeps the base model its adapters apply to (a resumed run: the run it resumes)."""
    return (config.resume_from.parent if config.resume_from else config.output_dir) / LORA_BASE


def save_lora_base(directory: Path, model: Any, tokenizer: PreTrainedTokenizerBase, eot_id: int,
                   dtype: torch.dtype) -> None:
    """The base model with <EOT> added (its rows initialised, then frozen: the adapters learn to use them) and
    LIMA's template and decoding, in the dtype of the checkpoint it came from (training holds it in float32):
    `lima serve --model RUN/base --enable-lora --lora-modules ...` serves every epoch from it."""
    def write(staging: Path) -> None:
        trained_in, model.config.dtype = model.config.dtype, dtype
        try:
            weights = {name: tensor.to(dtype) for name, tensor in model.state_dict().items()}
            model.save_pretrained(staging, state_dict=weights, safe_serialization=True)
        finally:
            model.config.dtype = trained_in
        generation_config(stop_ids(tokenizer, eot_id), tokenizer.bos_token_id).save_pretrained(staging)
        tokenizer.save_pretrained(staging)

    write_atomically(directory, write)


def stop_ids(tokenizer: PreTrainedTokenizerBase, eot_id: int) -> list[int]:
    """Generation ends at EOT, and at the pretraining EOS should the model emit it."""
    return sorted({eot_id, *([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])})


def save_checkpoint(directory: Path, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                    eot_id: int, state: dict[str, Any]) -> None:
    """A checkpoint vLLM can serve as is (weights, tokenizer with the chat template, LIMA's decoding that stops
    at EOT), plus the trainer state to resume from. For LoRA the weights are the adapter: `lima prep merge`."""
    directory.mkdir(parents=True, exist_ok=True)
    decoding = generation_config(stop_ids(tokenizer, eot_id), tokenizer.bos_token_id)
    model.save_pretrained(directory, safe_serialization=True)  # type: ignore[operator]  # a Module attribute to torch
    decoding.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    torch.save(state, directory / STATE_FILE)


def train(config: TrainConfig) -> Path:
    """Run the recipe; returns the directory of the last epoch's checkpoint. The data is read first, so a bad
    file is refused before any model is loaded."""
    conversations = training_conversations(config)
    dev_conversations = load_conversations(config.dev_data) if config.dev_data else None
    if ("/" in config.model or config.model.startswith(".")) and not Path(config.model).is_dir():
        raise DataError(f"--model {config.model}: no such model directory")
    accelerator = Accelerator(
        mixed_precision="bf16" if config.precision == "bf16" or (config.precision == "auto" and
                                                                 torch.cuda.is_available()) else "no",
        log_with=chosen_trackers(config.report_to) or None,
        project_config=ProjectConfiguration(project_dir=str(config.output_dir),
                                            logging_dir=str(config.output_dir / "logs")),
    )
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(config.resume_from or config.model)
    # A LoRA checkpoint holds only the adapter: the weights come from its base model (RUN/base, when resuming).
    if config.lora_rank:
        weights = lora_base(config) if config.resume_from and lora_base(config).exists() else config.model
    else:
        weights = config.resume_from or config.model
    checkpoint_dtype = AutoConfig.from_pretrained(weights).dtype or torch.float32
    model: Any = AutoModelForCausalLM.from_pretrained(weights, dtype=torch.float32)
    new_token = not config.reuse_end_of_turn and LIMA_EOT not in tokenizer.get_vocab()
    eot_id = install_end_of_turn(tokenizer, model, config.reuse_end_of_turn)  # a no-op on a resumed checkpoint
    if config.lora_rank and new_token:
        spread_rows(model, [eot_id], config.seed)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.convert_ids_to_tokens(eot_id)
    if config.lora_rank:
        base = str(weights)
        if not config.reuse_end_of_turn and not config.resume_from:  # <EOT> and LIMA's template: a base that has them
            base = str(lora_base(config).resolve())
            if accelerator.is_main_process:
                save_lora_base(lora_base(config), model, tokenizer, eot_id, checkpoint_dtype)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    add_residual_dropout(model, config.residual_dropout)  # on the attention/MLP blocks, which LoRA leaves in place
    if config.lora_rank:
        model = with_lora(model, config, base)
    examples = encode_all(config, tokenizer, conversations)
    dev = DevSet.of(dev_conversations, tokenizer, config.max_tokens) if dev_conversations else None

    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = optimizer_for(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_decay(total_steps, config.learning_rate, config.final_learning_rate)
    )
    first_epoch = 0
    if config.resume_from:
        state = torch.load(config.resume_from / STATE_FILE, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        first_epoch = state["epoch"] + 1
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    accelerator.init_trackers(config.project, config=hyperparameters(config))
    progress = tqdm(total=total_steps, initial=first_epoch * steps_per_epoch, desc="train",
                    disable=not accelerator.is_main_process)
    last_dir = config.resume_from or config.output_dir
    for epoch in range(first_epoch, config.epochs):
        epoch_batches = batches(examples, config.batch_size, config.seed + epoch)
        for batch in epoch_batches:
            started = time.perf_counter()
            # Every process takes every n-th example (balanced lengths); with fewer examples than processes, a
            # zero-weight pass keeps the gradient all-reduce of every process in step.
            shard, weight = batch[accelerator.process_index::accelerator.num_processes], 1.0
            if not shard:
                shard, weight = batch[:1], 0.0
            labelled = sum(sum(label != IGNORE for label in e["labels"][1:]) for e in batch)
            tokens = sum(len(e["input_ids"]) for e in batch)
            micros = list(micro_batches(shard, config.micro_batch_size, tokenizer.pad_token_id))
            loss_part = torch.zeros((), device=accelerator.device)
            for index, micro in enumerate(micros):
                micro = {key: value.to(accelerator.device) for key, value in micro.items()}
                # Gradients are all-reduced once per optimizer step, after the last micro-batch.
                with contextlib.nullcontext() if index == len(micros) - 1 else accelerator.no_sync(model):
                    with accelerator.autocast():
                        loss = summed_loss(model, micro) * weight / labelled
                    # DDP averages gradients over processes; scaling by their number makes it the batch's sum.
                    accelerator.backward(loss * accelerator.num_processes)
                loss_part += loss.detach()
            loss_total = accelerator.reduce(loss_part, "sum").item()
            optimizer.step()
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            tokens_per_second = tokens / (time.perf_counter() - started)
            progress.update()
            progress.set_postfix(epoch=epoch + 1, loss=f"{loss_total:.4f}", lr=f"{lr:.2e}",
                                 tok_s=f"{tokens_per_second:.0f}")
            accelerator.log({"train/loss": loss_total, "train/lr": lr, "train/tokens_per_second": tokens_per_second,
                             "train/epoch": epoch + 1}, step=progress.n)
        last_dir = config.output_dir / f"epoch-{epoch + 1:02d}"
        if accelerator.is_main_process:
            if dev is not None:
                results = evaluate(accelerator.unwrap_model(model), tokenizer, dev, config.dev_max_new_tokens,
                                   config.seed + epoch, stop_ids(tokenizer, eot_id))
                last_dir.mkdir(parents=True, exist_ok=True)
                (last_dir / "dev.json").write_text(json.dumps({"epoch": epoch + 1, **results}, indent=1))
                if results["dev_loss"] is not None:
                    accelerator.log({"dev/loss": results["dev_loss"]}, step=progress.n)
                model.train()
            save_checkpoint(last_dir, accelerator.unwrap_model(model), tokenizer, eot_id, {
                "epoch": epoch, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(), "config": json.loads(config.model_dump_json()),
            })
        accelerator.wait_for_everyone()
    progress.close()
    accelerator.end_training()
    return last_dir


def chosen_trackers(wanted: list[str] | None) -> list[str]:
    available = {str(tracker) for tracker in get_available_trackers()}
    if wanted is None:
        wandb_configured = any(os.environ.get(name) for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT"))
        return [name for name in ("tensorboard", "wandb")
                if name in available and (name != "wandb" or wandb_configured)]
    return wanted


def hyperparameters(config: TrainConfig) -> dict[str, Any]:
    """The config as flat scalars, which every tracker accepts as hyperparameters."""
    return {key: value if isinstance(value, (int, float, str, bool)) else str(value)
            for key, value in json.loads(config.model_dump_json()).items()}
