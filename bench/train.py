"""Training throughput: this trainer (`model_prep.train.recipe.train`) against TRL's SFTTrainer, same model, data and
settings, A/B interleaved in fresh processes; optionally model FLOPs utilisation on a GPU.

    python bench/train.py [--model DIR] [--epochs 1] [--rounds 2] [--micro-batch-size 4] [--max-tokens 2048]
    python bench/train.py --random-llama 1b --precision bf16 --sides lima --synthetic-examples 256 \
        --micro-batch-size 8                      # tokens/s and MFU on one H100/H200

Both sides get the same pre-tokenised examples (LIMA format with <EOT>, loss on the assistant tokens only), the
same model with the same residual-dropout hooks, AdamW (0.9, 0.95), weight decay 0.1, lr 1e-5 linear decay, no
warm-up, 32 examples per optimizer step as micro-batches of --micro-batch-size by gradient accumulation, float32
on the CPU, a checkpoint (weights + optimizer state) after each epoch. What TRL is not told keeps TRL's defaults.
Timed for each side (after its imports): from before the model is loaded to after the last checkpoint is
written. tokens/s counts the examples' real tokens (no padding) times the epochs, the same numerator for both.

MFU = 6 * matmul weights * tokens/s (+ attention's 12 * layers * hidden * sequence per token) / peak FLOP/s.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model_prep.train.data import SAMPLE

SIDES = ("lima", "trl")
# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, for --peak-tflops auto.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def random_llama(size: str, directory: Path) -> Path:
    """A randomly initialised Llama (weights in float32 on disk) with the embedded model's tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    shapes = {  # ~1.1B: TinyLlama's shape; tiny: for a smoke run on the CPU
        "1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                   num_key_value_heads=4),
        "tiny": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2),
    }[size]
    tokenizer = AutoTokenizer.from_pretrained(default_model())
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=4096, **shapes,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def synthetic_data(count: int, max_tokens: int, directory: Path) -> str:
    """`count` long single-turn rows (the sample's answers strung together, ~max_tokens tokens each): GPU-sized
    sequences for the MFU figure, where the sample's short rows would measure padding and launch overhead."""
    from model_prep.train.data import load_conversations

    answers = [c.messages[1]["content"] for c in load_conversations(str(SAMPLE), multi_turn=False)]
    path = directory / "synthetic.jsonl"
    with path.open("w") as out:
        for index in range(count):
            text, cursor = "", index
            while len(text) < max_tokens * 4:
                text += answers[cursor % len(answers)] + "\n\n"
                cursor += 1
            out.write(json.dumps({"conversations": [f"Write essay {index}.", text]}) + "\n")
    return str(path)


def default_model() -> Path:
    from model_prep.checkpoints.default_model import ensure_default_model
    from server.core.settings import ServerSettings

    return ensure_default_model(ServerSettings().data_dir)


def model_flops_per_token(model_dir: Path, mean_length: float) -> float:
    """Training FLOPs per token (forward + backward): 6 per weight that takes part in a matmul (every weight
    but an untied input embedding, a lookup) plus 12 * layers * hidden * sequence for the attention scores."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    matmul_weights = sum(p.numel() for p in model.parameters())
    if not config.tie_word_embeddings:
        matmul_weights -= model.get_input_embeddings().weight.numel()
    return 6 * matmul_weights + 12 * config.num_hidden_layers * config.hidden_size * mean_length


def examples_for(model_dir: Path, args: argparse.Namespace) -> tuple[list[dict], float]:
    """The encoded examples both sides train on, and their real token count."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from model_prep.train.config import TrainConfig
    from model_prep.train.end_of_turn import install_end_of_turn
    from model_prep.train.recipe import encode_all

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    install_end_of_turn(tokenizer, model, reuse_existing=False)
    config = TrainConfig(model=str(model_dir), data=args.data, max_tokens=args.max_tokens)
    examples = encode_all(config, tokenizer)
    return examples, sum(len(e["input_ids"]) for e in examples)


def run_lima(model_dir: Path, output: Path, args: argparse.Namespace) -> None:
    from model_prep.train.config import TrainConfig
    from model_prep.train.recipe import train

    train(TrainConfig(
        model=str(model_dir), data=args.data, output_dir=output, epochs=args.epochs, batch_size=32,
        micro_batch_size=args.micro_batch_size, max_tokens=args.max_tokens, residual_dropout=args.dropout,
        precision=args.precision, report_to=[],
    ))


def run_trl(model_dir: Path, output: Path, args: argparse.Namespace) -> None:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from model_prep.train.config import TrainConfig
    from model_prep.train.end_of_turn import install_end_of_turn
    from model_prep.train.recipe import encode_all
    from model_prep.train.residual_dropout import add_residual_dropout

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    install_end_of_turn(tokenizer, model, reuse_existing=False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    add_residual_dropout(model, args.dropout)
    examples = encode_all(TrainConfig(model=str(model_dir), data=args.data, max_tokens=args.max_tokens), tokenizer)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and torch.cuda.is_available())
    trainer = SFTTrainer(
        model=model, processing_class=tokenizer, train_dataset=Dataset.from_list(examples),
        args=SFTConfig(
            output_dir=str(output), num_train_epochs=args.epochs, per_device_train_batch_size=args.micro_batch_size,
            gradient_accumulation_steps=max(1, 32 // args.micro_batch_size), learning_rate=1e-5,
            adam_beta1=0.9, adam_beta2=0.95, weight_decay=0.1, lr_scheduler_type="linear", warmup_steps=0,
            max_length=args.max_tokens, bf16=bf16, save_strategy="epoch", logging_steps=1, report_to="none",
            seed=0, use_cpu=not torch.cuda.is_available(),
        ),
    )
    trainer.train()


def one_side(args: argparse.Namespace) -> None:
    """Run one side in this process and print {"seconds": ...} as the last line. Imports are not timed."""
    import model_prep.train.recipe  # noqa: F401
    if args.side == "trl":
        import trl  # noqa: F401
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        (run_lima if args.side == "lima" else run_trl)(Path(args.model), Path(scratch) / "out", args)
        print(json.dumps({"seconds": time.perf_counter() - started}))


def timed_in_subprocess(side: str, model_dir: Path, args: argparse.Namespace) -> float:
    command = [sys.executable, __file__, "--side", side, "--model", str(model_dir), "--data", args.data,
               "--epochs", str(args.epochs), "--micro-batch-size", str(args.micro_batch_size),
               "--max-tokens", str(args.max_tokens), "--dropout", str(args.dropout), "--precision", args.precision]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"{side} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model directory (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--random-llama", choices=("1b", "tiny"), help="train a randomly initialised Llama instead")
    parser.add_argument("--data", default=str(SAMPLE))
    parser.add_argument("--synthetic-examples", type=int, help="train on N generated rows of ~--max-tokens each")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds (each side once per round)")
    parser.add_argument("--micro-batch-size", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--peak-tflops", default="auto",
                        help="accelerator peak for MFU in TFLOP/s; auto: known GPUs, none on the CPU")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return one_side(args)

    with tempfile.TemporaryDirectory() as scratch:
        if args.synthetic_examples:
            args.data = synthetic_data(args.synthetic_examples, args.max_tokens, Path(scratch))
        if args.random_llama:
            model_dir = random_llama(args.random_llama, Path(scratch) / "random-llama")
        else:
            model_dir = Path(args.model) if args.model else default_model()
        examples, tokens = examples_for(model_dir, args)
        tokens *= args.epochs
        seconds: dict[str, list[float]] = {side: [] for side in args.sides}
        for round_index in range(args.rounds):
            for side in args.sides:
                seconds[side].append(timed_in_subprocess(side, model_dir, args))
                print(f"round {round_index + 1} {side}: {tokens / seconds[side][-1]:.1f} tokens/s "
                      f"({seconds[side][-1]:.1f} s)", flush=True)
        flops_per_token = model_flops_per_token(model_dir, tokens / args.epochs / len(examples))

    peak = peak_flops(args.peak_tflops)
    print(f"\n{len(examples)} examples, {tokens / args.epochs:.0f} real tokens per epoch, {args.epochs} epoch(s), "
          f"micro-batch {args.micro_batch_size}, model {args.random_llama or model_dir.name}")
    print(f"{'side':6} {'median s':>9} {'tokens/s':>9} {'MFU':>7}")
    rates = {}
    for side, values in seconds.items():
        rates[side] = tokens / statistics.median(values)
        mfu = f"{100 * rates[side] * flops_per_token / peak:.1f}%" if peak else "n/a"
        print(f"{side:6} {statistics.median(values):9.1f} {rates[side]:9.1f} {mfu:>7}")
    if len(rates) == 2:
        print(f"\nthis trainer / TRL SFTTrainer: {rates['lima'] / rates['trl']:.2f}x tokens/s (goal >= 1.3x)")


def peak_flops(setting: str) -> float | None:
    if setting != "auto":
        return None if setting == "none" else float(setting) * 1e12
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((tflops * 1e12 for key, tflops in PEAK_BF16_TFLOPS.items() if key in name), None)


if __name__ == "__main__":
    main()
