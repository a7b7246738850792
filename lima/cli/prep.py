"""`lima prep`: import, train, select, merge (model_prep), and the data and eval command groups."""

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from lima.cli.errors import USER_ERRORS, refuse
from lima.cli.prep_data import add_data_commands, run_data
from lima.cli.prep_eval import add_eval_commands, run_eval
from model_prep.checkpoints import DTYPES, WRITTEN_DTYPE


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (booleans as --x/--no-x), all optional so the file and preset can fill in."""
    from model_prep.train.config import PRESETS, TrainConfig

    parser.add_argument("--preset", choices=sorted(PRESETS), help="the paper's 65B recipe or its 7B ablation recipe")
    parser.add_argument("--config", type=Path, help="TOML or YAML file of the fields below")
    for name, field in TrainConfig.model_fields.items():
        flag = f"--{name.replace('_', '-')}"
        if field.annotation is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=field.description)
        elif name != "adam_betas":  # a pair: config file only
            default = "required" if field.is_required() else f"default: {field.default}"
            listed = field.annotation in (list[str], list[str] | None)
            parser.add_argument(flag, default=None, nargs="*" if listed else None,
                                help=f"{field.description or ''} ({default})".lstrip())


def run_training(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from model_prep.train.config import TrainConfig, build_config
    from model_prep.train.recipe import train

    overrides = {name: getattr(args, name) for name in TrainConfig.model_fields if hasattr(args, name)}
    config = build_config(args.preset, args.config, overrides)
    print(f"lima prep train: last checkpoint {train(config)}")
    return 0


def run_select(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import openai

    from model_prep.train.select import select

    if args.server and not args.dev_data:
        parser.error("--server needs --dev-data: the prompts (and answers, for the loss) to ask")
    try:
        if args.server:
            from model_prep.train.served_dev import answer_dev_from_server

            answered = answer_dev_from_server(args.run, args.server, args.dev_data, args.api_key,
                                              args.dev_max_new_tokens)
            print(f"dev set answered by the server for epochs {', '.join(map(str, answered))}")
        print(select(args.run, args.epoch, args.rule, args.first, args.last))
    except openai.APIError as exc:
        return refuse("select", exc)
    return 0


def run_merge(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from model_prep.checkpoints.merge import merge

    print(merge(args.adapter, args.out, args.base, args.dtype))
    return 0


def run_import(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from model_prep.checkpoints.decoding import LIMA_DECODING
    from model_prep.checkpoints.gguf_import import import_gguf

    print(import_gguf(args.gguf, args.out, args.dtype, LIMA_DECODING if args.decoding == "lima" else None))
    return 0


def run_default_model(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from model_prep.checkpoints.default_model import ensure_default_model
    from server.core.settings import ServerSettings

    print(ensure_default_model(args.data_dir or ServerSettings().data_dir))
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace, argparse.ArgumentParser], int]] = {
    "import-gguf": run_import, "default-model": run_default_model, "train": run_training, "merge": run_merge,
    "select": run_select, "data": run_data, "eval": run_eval,
}


def prep(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="lima prep", description="Model preparation.")
    commands = parser.add_subparsers(dest="command", required=True)
    imp = commands.add_parser("import-gguf", help="GGUF file -> Hugging Face checkpoint directory vLLM serves")
    imp.add_argument("gguf", type=Path)
    imp.add_argument("out", type=Path)
    imp.add_argument("--dtype", default=WRITTEN_DTYPE, choices=DTYPES)
    imp.add_argument("--decoding", choices=["model", "lima"], default="model",
                     help="model: the sampling the GGUF records (its authors'; none recorded = neutral); "
                     "lima: LIMA's (top_p 0.9, temperature 0.7, repetition penalty 1.2)")
    default = commands.add_parser("default-model", help="convert the embedded default model once; print its path")
    default.add_argument("--data-dir", type=Path)
    train_parser = commands.add_parser(
        "train", help="fine-tune with LIMA's recipe (defaults: the paper's); preset < --config < flags")
    add_train_flags(train_parser)
    merge_parser = commands.add_parser("merge", help="LoRA checkpoint -> one merged checkpoint `lima serve` loads")
    merge_parser.add_argument("adapter", type=Path, help="an epoch-NN directory of a LoRA run")
    merge_parser.add_argument("out", type=Path)
    merge_parser.add_argument("--base", help="base model (default: the one the adapter names)")
    merge_parser.add_argument("--dtype", default=WRITTEN_DTYPE, choices=DTYPES)
    chooser = commands.add_parser("select", help="dev answers of every epoch side by side; name the checkpoint")
    chooser.add_argument("run", type=Path, help="the training output directory")
    chooser.add_argument("--epoch", type=int, help="choose this epoch (the paper chose by hand)")
    chooser.add_argument("--rule", default="lowest-dev-loss", choices=["lowest-dev-loss", "latest"])
    chooser.add_argument("--from", dest="first", type=int, default=5, help="first epoch of the window (5)")
    chooser.add_argument("--to", dest="last", type=int, default=10, help="last epoch of the window (10)")
    chooser.add_argument("--server", help="answer the dev set on this lima server, which serves the run's "
                         "epochs as LoRA adapters (see docs/serving.md), instead of reading the dev.json training "
                         "wrote")
    chooser.add_argument("--api-key", help="the server's API key, if it has keys")
    chooser.add_argument("--dev-data", help="LIMA-format dev rows (with --server)")
    chooser.add_argument("--dev-max-new-tokens", type=int, default=2048, help="answer length (with --server)")
    add_data_commands(commands.add_parser("data", help="build the train/dev/test sets or the ablation sets"))
    add_eval_commands(commands.add_parser("eval", help="the paper's evaluations against OpenAI-compatible endpoints"))
    args = parser.parse_args(argv)
    try:
        return HANDLERS[args.command](args, parser)
    except USER_ERRORS as exc:
        name = " ".join(filter(None, (args.command, getattr(args, "data_command", None),
                                      getattr(args, "eval_command", None))))
        return refuse(name, exc)
