"""Summaries of the judgements (summary.json), the Markdown report and the preference chart in the style of the
paper's Figure 1 (pairwise.png)."""

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from model_prep.evaluate.config import EvalConfig
from model_prep.evaluate.stats import mean_interval, shares
from model_prep.evaluate.store import Records

OUTCOMES = ("win", "tie", "loss")  # the candidate's view
RATINGS = ("FAIL", "PASS", "EXCELLENT")


def pairwise_outcome(candidate_first: str | None, baseline_first: str | None) -> str | None:
    """Both orders must agree for a win or a loss; a disagreement (position bias) or a tie is a tie."""
    if candidate_first is None or baseline_first is None:
        return None
    first = {"A": "win", "B": "loss", "TIE": "tie"}[candidate_first]
    second = {"A": "loss", "B": "win", "TIE": "tie"}[baseline_first]
    return first if first == second else "tie"


def summarise(config: EvalConfig, prompts: list[dict], dialogues: list[dict], answers: dict[str, Records],
              verdicts: dict[str, Records]) -> dict[str, Any]:
    summary: dict[str, Any] = {"candidate": config.candidate.name if config.candidate else None,
                               "judge": config.judge.name if config.judge else None,
                               "prompts": len(prompts), "generations": {}}
    for name, records in answers.items():
        errors = [r for r in records.records.values() if r.get("error")]
        summary["generations"][name] = {"answers": len(records.records) - len(errors), "refused": len(errors)}
    resamples, seed = config.bootstrap, config.seed
    for protocol, records in verdicts.items():
        unparsed = sum(1 for r in records.records.values() if r["verdict"] is None)
        section: dict[str, Any] = {}
        if protocol == "pairwise":
            for baseline in (b.name for b in config.baselines):
                outcomes = [pairwise_outcome(verdict_of(records, f"{baseline}|{p['id']}|candidate-first"),
                                             verdict_of(records, f"{baseline}|{p['id']}|baseline-first"))
                            for p in prompts]
                decided = [o for o in outcomes if o is not None]
                section[baseline] = {"outcomes": shares(decided, OUTCOMES, resamples, seed),
                                     "judged": len(decided), "not_judged": len(outcomes) - len(decided)}
        elif protocol in ("absolute", "safety", "likert"):
            for name in answers:
                labels = [r["verdict"] for key, r in records.records.items()
                          if key.startswith(f"{name}|") and r["verdict"] is not None]
                if protocol == "likert":
                    section[name] = mean_interval([int(v) for v in labels], resamples, seed)
                else:
                    section[name] = shares(labels, RATINGS if protocol == "absolute" else ("SAFE", "UNSAFE"),
                                           resamples, seed)
                section[name]["judged"] = len(labels)
        else:
            section = multiturn_summary(records, answers, dialogues)
        summary[protocol] = {"by_endpoint": section, "unparsed": unparsed, "calls": len(records.records)}
    return summary


def verdict_of(records: Records, key: str) -> str | None:
    record = records.get(key)
    return record["verdict"] if record else None


def multiturn_summary(records: Records, answers: dict[str, Records], dialogues: list[dict]) -> dict[str, Any]:
    """Per endpoint: turns judged, fails (the paper: 15 of 42 zero-shot, 1 of 46 with dialogues), Excellent share,
    fail rate by turn number, and conversations that failed within their first three turns."""
    section = {}
    for name in answers:
        labels: Counter[str] = Counter()
        by_turn: dict[int, Counter[str]] = defaultdict(Counter)
        derailed = 0
        for dialogue in dialogues:
            turn_labels = [verdict_of(records, f"{name}|{dialogue['id']}#{turn}")
                           for turn in range(len(dialogue["turns"]))]
            for turn, label in enumerate(turn_labels):
                if label is not None:
                    labels[label] += 1
                    by_turn[turn + 1][label] += 1
            derailed += "FAIL" in turn_labels[:3]
        judged = sum(labels.values())
        section[name] = {
            "turns": judged, "fails": labels["FAIL"], "fail_rate": labels["FAIL"] / judged if judged else 0.0,
            "excellent_share": labels["EXCELLENT"] / judged if judged else 0.0,
            "fail_rate_by_turn": {turn: counts["FAIL"] / sum(counts.values())
                                  for turn, counts in sorted(by_turn.items())},
            "derailed_within_3_turns": derailed, "conversations": len(dialogues),
        }
    return section


def plot_preferences(path: Path, candidate: str, pairwise: dict[str, Any]) -> None:
    """Horizontal stacked bars, one per baseline: candidate better / tie / baseline better."""
    baselines = list(pairwise)
    height = 1.8 + 0.6 * len(baselines)
    figure, axis = plt.subplots(figsize=(8, height))
    colours = {"win": "#4c72b0", "tie": "#b0b0b0", "loss": "#dd8452"}
    names = {"win": f"{candidate} better", "tie": "neither significantly better", "loss": "baseline better"}
    for row, baseline in enumerate(baselines):
        left = 0.0
        for outcome in OUTCOMES:
            share = pairwise[baseline]["outcomes"][outcome]["share"] * 100
            axis.barh(row, share, left=left, color=colours[outcome], label=names[outcome] if row == 0 else None)
            if share >= 6:
                axis.text(left + share / 2, row, f"{share:.0f}%", ha="center", va="center", color="white")
            left += share
    axis.set_yticks(range(len(baselines)), [f"vs {b}" for b in baselines])
    axis.set_xlim(0, 100)
    axis.set_xlabel("% of test prompts")
    axis.set_title(f"Preference: {candidate} against each baseline")
    figure.legend(loc="lower center", ncol=3, frameon=False)
    figure.tight_layout(rect=(0, 0.45 / height, 1, 1))
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


def percent(entry: dict[str, float]) -> str:
    return f"{entry['share'] * 100:.1f} % [{entry['low'] * 100:.1f}, {entry['high'] * 100:.1f}]"


def markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Evaluation: {summary['candidate']} (judge: {summary['judge']})", "",
             f"{summary['prompts']} test prompts. Shares with 95 % bootstrap intervals.", "",
             "| endpoint | answers | refused by the endpoint |", "|---|---:|---:|"]
    lines += [f"| {name} | {g['answers']} | {g['refused']} |" for name, g in summary["generations"].items()]
    if "pairwise" in summary:
        lines += ["", "## Pairwise preference (both orders judged)", "",
                  "| baseline | candidate better | tie | baseline better | judged |", "|---|---|---|---|---:|"]
        for baseline, entry in summary["pairwise"]["by_endpoint"].items():
            o = entry["outcomes"]
            lines.append(f"| {baseline} | {percent(o['win'])} | {percent(o['tie'])} | {percent(o['loss'])} | "
                         f"{entry['judged']} |")
        lines += ["", "![preference](pairwise.png)"]
    for protocol, title, labels in (("absolute", "Absolute rating", RATINGS), ("safety", "Safety", ("SAFE", "UNSAFE"))):
        if protocol in summary:
            lines += ["", f"## {title}", "", "| endpoint | " + " | ".join(labels) + " | judged |",
                      "|---|" + "---|" * len(labels) + "---:|"]
            for name, entry in summary[protocol]["by_endpoint"].items():
                lines.append(f"| {name} | " + " | ".join(percent(entry[label]) for label in labels)
                             + f" | {entry['judged']} |")
    if "likert" in summary:
        lines += ["", "## Helpfulness (1-6)", "", "| endpoint | mean [95 % CI] | judged |", "|---|---|---:|"]
        for name, entry in summary["likert"]["by_endpoint"].items():
            lines.append(f"| {name} | {entry['mean']:.2f} [{entry['low']:.2f}, {entry['high']:.2f}] | "
                         f"{entry['judged']} |")
    if "multiturn" in summary:
        lines += ["", "## Multi-turn", "", "| endpoint | turns | fails | fail rate | Excellent | derailed in 3 turns |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, e in summary["multiturn"]["by_endpoint"].items():
            lines.append(f"| {name} | {e['turns']} | {e['fails']} | {e['fail_rate'] * 100:.1f} % | "
                         f"{e['excellent_share'] * 100:.1f} % | {e['derailed_within_3_turns']} of "
                         f"{e['conversations']} |")
    lines += ["", "## Judge replies that did not parse (after retries)", ""]
    lines += [f"- {protocol}: {summary[protocol]['unparsed']} of {summary[protocol]['calls']}"
              for protocol in ("pairwise", "absolute", "likert", "safety", "multiturn") if protocol in summary]
    return "\n".join(lines) + "\n"


def write_results(config: EvalConfig, prompts: list[dict], dialogues: list[dict], answers: dict[str, Records],
                  verdicts: dict[str, Records], failed_this_run: int) -> dict[str, Any]:
    summary = summarise(config, prompts, dialogues, answers, verdicts)
    summary["calls_failed_this_run"] = failed_this_run  # transient failures: a rerun retries them
    out = Path(config.out)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    if "pairwise" in summary and summary["pairwise"]["by_endpoint"]:
        plot_preferences(out / "pairwise.png", summary["candidate"], summary["pairwise"]["by_endpoint"])
    (out / "report.md").write_text(markdown(summary))
    return summary
