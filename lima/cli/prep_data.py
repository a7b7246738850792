"""`lima prep data`: build the paper's sets from public dumps, the ablation sets, and the audit of a build."""

import argparse
import sys
from pathlib import Path


def add_data_commands(parser: argparse.ArgumentParser) -> None:
    from model_prep.curation.build import ABLATIONS, BuildConfig, Counts

    defaults = {name: field.default for name, field in BuildConfig.model_fields.items()}  # one source: the config

    data = parser.add_subparsers(dest="data_command", required=True)
    build = data.add_parser("build", help="the paper's 1,000 / 50 / 300 sets from raw public dumps")
    ablation = data.add_parser("ablation", help="the paper's data ablation sets (Stack Exchange, wikiHow)")
    ablation.add_argument("kind", choices=ABLATIONS)
    ablation.add_argument("--sizes", type=int, nargs="+", default=[2000],
                          help="set sizes (se-scale: e.g. 2000 4000 8000 16000 32000)")
    for command in (build, ablation):
        command.add_argument("--out", type=Path, required=True, help="output directory")
        command.add_argument("--stackexchange", type=Path, help="Stack Exchange dump: one directory per site")
        command.add_argument("--wikihow", type=Path, help="wikiHow CSV or JSON(L) dump")
        command.add_argument("--seed", type=int, default=defaults["seed"])
        command.add_argument("--temperature", type=float, default=defaults["temperature"],
                             help=f"site sampling temperature ({defaults['temperature']:g})")
        command.add_argument("--per-site-top", type=int, default=defaults["per_site_top"],
                             help="top questions considered per site")
    build.add_argument("--reddit", type=Path, help="Pushshift .zst/.jsonl file or directory")
    build.add_argument("--sni", type=Path, help="Super-NaturalInstructions tasks directory")
    build.add_argument("--authored", type=Path, nargs="+", default=[], help="hand-written JSONL files")
    for name in ("writing-prompts", "ask-reddit", "dialogues"):
        build.add_argument(f"--keep-{name}", type=Path, help=f"keep-list of {name} candidate ids (one per line)")
    build.add_argument("--multi-turn", action=argparse.BooleanOptionalAction, default=True,
                       help="add the Stack Exchange dialogue candidates to train")
    build.add_argument("--count", action="append", default=[], metavar="NAME=N",
                       help=f"override a count; names: {', '.join(Counts.model_fields)}")
    build.add_argument("--strict", action="store_true",
                       help="exit 1 when a set is short of its count or an input could not be read")
    audit = data.add_parser("audit", help="print a build's kept rows with rule hits and borderline words marked")
    audit.add_argument("out", type=Path, help="a build's output directory")
    audit.add_argument("--split", choices=["train", "dev", "test"], action="append", help="default: all three")
    audit.add_argument("--only-marked", action="store_true", help="leave out the rows with nothing marked")


def run_data(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Bad flags, files and configs are refused in one line by `lima prep` (lima/cli/errors.py)."""
    from model_prep.curation.build import BuildConfig, Counts, ablation, build, problems

    if args.data_command == "audit":
        from model_prep.curation.audit import SPLITS, audit

        audit(args.out, tuple(args.split or SPLITS), args.only_marked)
        return 0
    given = {key: value for key, value in vars(args).items() if key in BuildConfig.model_fields}
    counts = {}
    for item in getattr(args, "count", []):
        name, equals, number = item.partition("=")
        if not equals:
            raise ValueError(f"--count {item}: expected NAME=N, names: {', '.join(Counts.model_fields)}")
        counts[name] = number
    config = BuildConfig(**given, counts=Counts(**counts))
    if args.data_command == "ablation":
        for path in ablation(args.kind, args.sizes, config):
            print(path)
        return 0
    report = build(config)
    print(f"lima prep data build: {report['splits']} -> {config.out} (report.md, lengths.png, sites.png)")
    found = problems(report)
    for problem in found:
        print(f"WARNING: {problem}", file=sys.stderr)
    if found and args.strict:
        print(f"lima prep data build: --strict: {len(found)} problem(s) above", file=sys.stderr)
        return 1
    return 0
