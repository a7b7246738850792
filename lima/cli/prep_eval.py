"""`lima prep eval`: the paper's evaluation protocols against OpenAI-compatible endpoints, and rater agreement."""

import argparse
from pathlib import Path


def add_eval_commands(parser: argparse.ArgumentParser) -> None:
    from model_prep.evaluate.config import PROTOCOLS

    evals = parser.add_subparsers(dest="eval_command", required=True)
    run = evals.add_parser("run", help="answers, judge verdicts, summary and report (resumable)")
    run.add_argument("--config", type=Path, help="TOML or YAML with the fields below (flags win)")
    run.add_argument("--out", type=Path, help="results directory (rerun with the same one to resume)")
    run.add_argument("--test", type=Path, help="test prompts: LIMA JSONL, JSONL of {prompt}, or plain lines")
    run.add_argument("--candidate", help="name=URL[@model], e.g. lima=http://127.0.0.1:8000/v1")
    run.add_argument("--baseline", action="append", default=[], help="name=URL[@model]; repeat for several")
    run.add_argument("--judge", help="name=URL[@model] of the judge")
    run.add_argument("--protocols", nargs="+", choices=PROTOCOLS, help=f"default: all ({', '.join(PROTOCOLS)})")
    run.add_argument("--safety-prompts", type=Path, help="sensitive prompts (default: test rows marked sensitive)")
    run.add_argument("--dialogues", type=Path, help="JSONL of {id, turns: [user messages]} for multiturn")
    run.add_argument("--multiturn-api", choices=["conversations", "chat"],
                     help="conversations: server-side history (this project's server); chat: resend history")
    run.add_argument("--samples", type=int, help="answers per prompt (default 1; the ablations used 5)")
    run.add_argument("--max-tokens", type=int, help="answer length (LIMA: 2048)")
    run.add_argument("--concurrency", type=int, help="calls in flight (8)")
    run.add_argument("--limit", type=int, help="only the first N test prompts")
    agreement = evals.add_parser("agreement", help="tie-discounted accuracy between two raters' pairwise labels")
    agreement.add_argument("first", type=Path, help="CSV with id,label, or a results directory")
    agreement.add_argument("second", type=Path)


def run_eval(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Bad flags, files and configs are refused in one line by `lima prep` (lima/cli/errors.py)."""
    import asyncio
    import json

    from model_prep.evaluate.config import Endpoint, EvalConfig

    if args.eval_command == "agreement":
        from model_prep.evaluate.agreement import read_labels
        from model_prep.evaluate.stats import tie_discounted_accuracy

        print(json.dumps(tie_discounted_accuracy(read_labels(args.first), read_labels(args.second))))
        return 0
    from model_prep.evaluate.run import run
    from model_prep.train.config import read_config_file

    fields = read_config_file(args.config) if args.config else {}
    flags = {"out": args.out, "test": args.test, "safety_prompts": args.safety_prompts,
             "dialogues": args.dialogues, "multiturn_api": args.multiturn_api, "samples": args.samples,
             "concurrency": args.concurrency, "limit": args.limit, "protocols": args.protocols}
    fields.update({key: value for key, value in flags.items() if value is not None})
    if args.candidate:
        fields["candidate"] = Endpoint.parse(args.candidate)
    if args.baseline:
        fields["baselines"] = [Endpoint.parse(spec) for spec in args.baseline]
    if args.judge:
        fields["judge"] = Endpoint.parse(args.judge)
    if args.max_tokens:
        fields["decoding"] = {**fields.get("decoding", {}), "max_tokens": args.max_tokens}
    summary = asyncio.run(run(EvalConfig(**fields)))
    print(f"lima prep eval run: results in {fields['out']} (summary.json, report.md); "
          f"{summary['calls_failed_this_run']} calls failed and are left for a rerun")
    return 0
