"""The build report: what each source gave and what each rule removed (report.json, report.md), response
length histograms (lengths.png) and the Stack Exchange site distribution, raw vs τ-sampled (sites.png)."""

import json
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from model_prep.curation.records import Candidate, Tally
from model_prep.curation.stackexchange import Site

# PNG metadata without the matplotlib version, so reruns give identical files.
PNG_METADATA = {"Software": None}


def site_distribution(sites: list[Site], train: list[Candidate], temperature: float) -> list[dict[str, Any]]:
    """Per site: its share of all questions (raw), its share under p ∝ size^(1/τ), and its share of the rows
    actually drawn."""
    drawn = Counter(c.provenance["site"] for c in train if c.source == "stackexchange")
    total = sum(site.questions for site in sites) or 1
    tempered = {site.name: site.questions ** (1 / temperature) for site in sites}
    tempered_total = sum(tempered.values()) or 1
    drawn_total = sum(drawn.values()) or 1
    return [{"site": site.name, "group": "stem" if site.stem else "other", "questions": site.questions,
             "candidates": len(site.candidates), "raw_share": site.questions / total,
             "tempered_share": tempered[site.name] / tempered_total, "drawn": drawn[site.name],
             "drawn_share": drawn[site.name] / drawn_total}
            for site in sorted(sites, key=lambda s: -s.questions)]


def plot_lengths(path: Path, splits: dict[str, list[Candidate]]) -> None:
    by_source: dict[str, list[int]] = {}
    for candidate in splits["train"]:
        by_source.setdefault(candidate.source, []).append(sum(len(t) for t in candidate.conversations[1::2]))
    figure, axis = plt.subplots(figsize=(8, 4.5))
    if by_source:
        axis.hist(list(by_source.values()), bins=30, stacked=True, label=list(by_source))
        axis.legend()
    axis.set(xlabel="response length (characters)", ylabel="train examples", title="Response lengths by source")
    figure.tight_layout()
    figure.savefig(path, metadata=PNG_METADATA)
    plt.close(figure)


def plot_sites(path: Path, distribution: list[dict[str, Any]], limit: int = 30) -> None:
    shown = distribution[:limit]
    figure, axis = plt.subplots(figsize=(max(6, len(shown) * 0.45), 4.5))
    positions = range(len(shown))
    for offset, key, label in ((-0.27, "raw_share", "raw (∝ size)"), (0.0, "tempered_share", "τ-sampled (∝ size^1/τ)"),
                               (0.27, "drawn_share", "drawn")):
        axis.bar([p + offset for p in positions], [row[key] for row in shown], width=0.27, label=label)
    axis.set_xticks(list(positions), [row["site"] for row in shown], rotation=60, ha="right")
    axis.set(ylabel="share of Stack Exchange examples", title="Stack Exchange sites: raw vs temperature sampling")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, metadata=PNG_METADATA)
    plt.close(figure)


def write_report(out: Path, tally: Tally, splits: dict[str, list[Candidate]], wanted: dict[str, int],
                 sites: list[Site], temperature: float) -> dict[str, Any]:
    split_counts = {split: dict(sorted(Counter(c.source for c in rows).items())) for split, rows in splits.items()}
    distribution = site_distribution(sites, splits["train"], temperature)
    written = Counter(c.asked_as for rows in splits.values() for c in rows)
    report = {"splits": {split: len(rows) for split, rows in splits.items()}, "by_source": split_counts,
              "asked_for": wanted, "written": {name: written[name] for name in wanted}, "sources": tally.summary(),
              "inputs": tally.inputs, "stackexchange_sites": distribution}
    (out / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True, ensure_ascii=False))
    plot_lengths(out / "lengths.png", splits)
    if distribution:
        plot_sites(out / "sites.png", distribution)
    (out / "report.md").write_text(markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Data build report", "", "| split | rows | by source |", "|---|---:|---|"]
    for split, total in report["splits"].items():
        parts = ", ".join(f"{source} {count}" for source, count in report["by_source"][split].items())
        lines.append(f"| {split} | {total} | {parts} |")
    lines += ["", "## Asked for (the paper's counts) and written", "", "| set | asked | written |", "|---|---:|---:|"]
    lines += [f"| {name} | {count} | {report['written'][name]}{' (short)' if report['written'][name] < count else ''} |"
              for name, count in report["asked_for"].items()]
    lines += ["", "## Inputs", "", "| source | input | status | rows | detail |", "|---|---|---|---:|---|"]
    lines += [f"| {i['source']} | {escaped(i['path'])} | {i['status']} | {'' if i['rows'] is None else i['rows']} "
              f"| {escaped(i['detail'])} |" for i in report["inputs"]] or ["| (none) | | | | |"]
    lines += ["", "## What each rule removed or rewrote", "",
              "| source | read | rule | removed | rewritten |", "|---|---:|---|---:|---:|"]
    for source, entry in report["sources"].items():
        if source == "malformed_examples":
            continue
        rules = sorted(set(entry["removed"]) | set(entry["rewritten"])) or ["(none)"]
        for rule in rules:
            lines.append(f"| {source} | {entry['read']} | {rule} | {entry['removed'].get(rule, 0)} "
                         f"| {entry['rewritten'].get(rule, 0)} |")
        lines.append(f"| {source} | | malformed input skipped | {entry['malformed']} | |")
        lines.append(f"| {source} | | **kept in the splits** | **{entry['kept']}** | |")
    examples = [(source, key, shown) for source, entry in report["sources"].items() if source != "malformed_examples"
                for key, shown in entry["examples"].items()]
    if examples:
        lines += ["", "## Examples (up to five per rule; the words that matched between »«)", ""]
        for source, key, shown in examples:
            lines += [f"**{source}, {key}**", ""] + [f"- {escaped(text)}" for text in shown] + [""]
    if report["sources"]["malformed_examples"]:
        lines += ["", "## Malformed input (skipped)", ""] + [f"- {m}" for m in report["sources"]["malformed_examples"]]
    if report["stackexchange_sites"]:
        lines += ["", "## Stack Exchange sites", "", "| site | group | questions | raw share | τ share | drawn |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {r['site']} | {r['group']} | {r['questions']} | {r['raw_share']:.3f} | {r['tempered_share']:.3f} "
                  f"| {r['drawn']} |" for r in report["stackexchange_sites"]]
    lines += ["", "![response lengths](lengths.png)", "", "![sites](sites.png)", ""]
    return "\n".join(lines)


def escaped(text: str) -> str:
    """A snippet of an answer shown verbatim in Markdown: no headings, emphasis or tables of its own."""
    return "".join(f"\\{c}" if c in "\\`*_[]#|<>" else c for c in text)
