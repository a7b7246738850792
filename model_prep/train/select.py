"""`lima prep select`: the paper picked its checkpoint by hand, between epochs 5 and 10, reading dev answers.
This lays every epoch's dev answers side by side (Markdown) and names a checkpoint: the epoch you give, or
one chosen by a rule within the window."""

import json
from pathlib import Path
from typing import Any, Literal

Rule = Literal["lowest-dev-loss", "latest"]


def dev_results(run_dir: Path) -> dict[int, dict[str, Any]]:
    """epoch -> its dev.json, for every epoch directory that has one."""
    found = {}
    for path in sorted(run_dir.glob("epoch-*/dev.json")):
        result = json.loads(path.read_text())
        found[int(result["epoch"])] = result
    if not found:
        raise FileNotFoundError(f"no epoch-*/dev.json in {run_dir}: train with --dev-data to get them")
    return found


def side_by_side(results: dict[int, dict[str, Any]]) -> str:
    epochs = sorted(results)
    lines = ["# Dev answers by epoch", "", "| epoch | dev loss |", "|---:|---:|"]
    lines += [f"| {e} | {results[e]['dev_loss']:.4f} |" if results[e]["dev_loss"] is not None else f"| {e} | - |"
              for e in epochs]
    for index, first in enumerate(results[epochs[0]]["answers"]):
        lines += ["", f"## {index + 1}. {first['prompt']}", ""]
        for epoch in epochs:
            answer = results[epoch]["answers"][index]["answer"].strip().replace("\n", "\n> ")
            lines += [f"**Epoch {epoch}**", "", f"> {answer}", ""]
    return "\n".join(lines) + "\n"


def choose(results: dict[int, dict[str, Any]], epoch: int | None = None, rule: Rule = "lowest-dev-loss",
           first: int = 5, last: int = 10) -> int:
    """The chosen epoch: `epoch` when given (the paper's way, by hand), else `rule` among epochs first..last."""
    if epoch is not None:
        if epoch not in results:
            raise ValueError(f"epoch {epoch} has no dev results (have {sorted(results)})")
        return epoch
    window = [e for e in sorted(results) if first <= e <= last] or sorted(results)
    if rule == "latest":
        return window[-1]
    scored = [e for e in window if results[e]["dev_loss"] is not None]
    if not scored:
        raise ValueError("no dev loss recorded (the dev rows have no answers): choose an --epoch by hand")
    return min(scored, key=lambda e: results[e]["dev_loss"])


def select(run_dir: Path, epoch: int | None = None, rule: Rule = "lowest-dev-loss", first: int = 5,
           last: int = 10) -> Path:
    """Write RUN/dev_side_by_side.md and return the chosen epoch's checkpoint directory."""
    results = dev_results(run_dir)
    (run_dir / "dev_side_by_side.md").write_text(side_by_side(results))
    return run_dir / f"epoch-{choose(results, epoch, rule, first, last):02d}"
