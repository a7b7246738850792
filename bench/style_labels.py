"""The answer style filters against a person's labels on a real Stack Exchange dump (bench/labels/).

For each rule: precision (of the answers it flags, how many the person says break that rule) and recall (of the
answers the person says break it, how many it flags). Overall: how many answers the filters keep that the person
would drop (goal: at most 1 in 20), and how many the person would keep that the filters keep (goal: 80 %).

    python bench/style_labels.py --posts PATH/coffee.stackexchange.com/Posts.xml [--labels FILE ...]
"""

import argparse
import csv
from collections import Counter
from pathlib import Path

from model_prep.curation import style
from model_prep.curation.records import Tally
from model_prep.curation.stackexchange import iter_rows
from model_prep.curation.text import convert

LABELS = Path(__file__).with_name("labels")
RULE_KEYS = {"first_person": style.FIRST_PERSON, "comments": style.COMMENTS, "other_answers": style.OTHER_POSTS,
             "other_users": style.OTHER_USERS, "other_sites": style.OTHER_SITES, "thanks": style.THANKS,
             "edit_note": style.EDIT_NOTE, "credits": style.CREDITS, "removed_reference": style.REMOVED}


def read_labels(path: Path) -> dict[str, tuple[str, set[str]]]:
    rows = csv.reader((line for line in path.open(encoding="utf-8") if not line.startswith("#")), delimiter="\t")
    return {row[0]: (row[1], {RULE_KEYS[key] for key in row[2].split(",") if key}) for row in rows}


def percent(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f} %)" if whole else "-"


def score(labels: dict[str, tuple[str, set[str]]], bodies: dict[str, str]) -> list[str]:
    flagged: dict[str, set[str]] = {}
    kept: dict[str, bool] = {}
    for answer_id in labels:
        review = style.review(convert(bodies[answer_id]))
        flagged[answer_id] = {match.rule for match in review.matches}
        kept[answer_id] = review.kept
    lines = ["| rule | flagged | precision | recall |", "|---|---:|---:|---:|"]
    for rule in style.RULES:
        hits = Counter()
        for answer_id, (_, breaks) in labels.items():
            hits["flagged"] += rule in flagged[answer_id]
            hits["labelled"] += rule in breaks
            hits["both"] += rule in flagged[answer_id] and rule in breaks
        lines.append(f"| {rule} | {hits['flagged']} | {percent(hits['both'], hits['flagged'])} "
                     f"| {percent(hits['both'], hits['labelled'])} |")
    person_keeps = [a for a, (label, _) in labels.items() if label in ("keep", "rewrite")]
    filter_keeps = [a for a in labels if kept[a]]
    bad = [a for a in filter_keeps if labels[a][0] == "drop"]
    lines += ["", f"- kept by the filters that the person would drop: {percent(len(bad), len(filter_keeps))}"
                  + (f" ({', '.join(bad)})" if bad else ""),
              f"- kept by the filters of those the person would keep: "
              f"{percent(sum(kept[a] for a in person_keeps), len(person_keeps))}"
              + (f" (lost: {', '.join(a for a in person_keeps if not kept[a])})"
                 if not all(kept[a] for a in person_keeps) else "")]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=Path, required=True, help="the dump's Posts.xml")
    parser.add_argument("--labels", type=Path, nargs="*", default=sorted(LABELS.glob("*.tsv")))
    args = parser.parse_args()
    bodies = {row["Id"]: row.get("Body", "") for _, row in iter_rows(args.posts, Tally())
              if row.get("PostTypeId") == "2"}
    for path in args.labels:
        labels = read_labels(path)
        missing = sorted(set(labels) - set(bodies))
        if missing:
            raise SystemExit(f"{path}: answers not in {args.posts}: {', '.join(missing[:10])}")
        print(f"\n### {path.name}: {len(labels)} answers\n")
        print("\n".join(score(labels, bodies)))


if __name__ == "__main__":
    main()
