"""Shares and means with bootstrap confidence intervals, and the paper's tie-discounted agreement."""

import random
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank value at fraction `q` (0.5: the median, 0.99: p99) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def shares(outcomes: Sequence[str], labels: Sequence[str], resamples: int, seed: int) -> dict[str, dict[str, float]]:
    """Per label: its share of `outcomes` and a 95 % percentile-bootstrap interval (outcomes resampled)."""
    if not outcomes:
        return {label: {"share": 0.0, "low": 0.0, "high": 0.0, "count": 0} for label in labels}
    rng = random.Random(seed)
    draws: dict[str, list[float]] = {label: [] for label in labels}
    for _ in range(resamples):
        sample = rng.choices(outcomes, k=len(outcomes))
        for label in labels:
            draws[label].append(sample.count(label) / len(sample))
    return {label: {"share": outcomes.count(label) / len(outcomes), "low": percentile(draws[label], 0.025),
                    "high": percentile(draws[label], 0.975), "count": outcomes.count(label)}
            for label in labels}


def mean_interval(values: Sequence[float], resamples: int, seed: int) -> dict[str, float]:
    """Mean and its 95 % percentile-bootstrap interval."""
    if not values:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "count": 0}
    rng = random.Random(seed)
    means = [statistics.fmean(rng.choices(values, k=len(values))) for _ in range(resamples)]
    return {"mean": statistics.fmean(values), "low": percentile(means, 0.025), "high": percentile(means, 0.975),
            "count": len(values)}


PAIRWISE_LABELS = {"a": "a", "b": "b", "tie": "tie", "win": "a", "loss": "b", "1": "a", "2": "b",
                   "neither": "tie", "equal": "tie"}


def normalise_label(label: str) -> str:
    key = label.strip().lower()
    if key not in PAIRWISE_LABELS:
        raise ValueError(f"unknown label {label!r} (use a/b/tie, win/loss/tie or 1/2/tie)")
    return PAIRWISE_LABELS[key]


def tie_discounted_accuracy(first: dict[str, str], second: dict[str, str]) -> dict[str, float]:
    """The paper's agreement on the items both raters labelled: 1 when they agree, 0.5 when exactly one of
    them says tie, 0 otherwise."""
    common = sorted(set(first) & set(second))
    if not common:
        raise ValueError("the two label sets share no item")
    score = 0.0
    for item in common:
        a, b = normalise_label(first[item]), normalise_label(second[item])
        score += 1.0 if a == b else 0.5 if "tie" in (a, b) else 0.0
    return {"agreement": score / len(common), "items": len(common),
            "only_first": len(set(first) - set(second)), "only_second": len(set(second) - set(first))}
