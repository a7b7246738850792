"""Super-Natural Instructions: the task files (`tasks/taskNNN_name.json`) of the public repository.

The paper took 50 natural-language-generation tasks and one random instance of each. A task counts as
generation when one of its categories is in GENERATION and it is English in and out; the prompt is the task
definition followed by the instance's input, the answer its first reference output.
"""

import json
import random
from pathlib import Path

from model_prep.curation.records import Candidate, Tally

SOURCE = "sni"
LICENCE = "Apache-2.0 (Super-NaturalInstructions)"
GENERATION = {
    "Summarization", "Paraphrasing", "Text Simplification", "Style Transfer", "Title Generation",
    "Question Generation", "Story Composition", "Dialogue Generation", "Data to Text", "Sentence Composition",
    "Poem Generation", "Explanation", "Code to Text", "Text Completion", "Question Rewriting",
    "Sentence Expansion", "Sentence Compression", "Paper Review", "Misc.", "Answer Generation",
}
MIN_OUTPUT_CHARS = 40


def task_candidate(path: Path, seed: int, tally: Tally) -> Candidate | None:
    try:
        task = json.loads(path.read_text(encoding="utf-8"))
        categories = set(task.get("Categories") or [])
        definition = " ".join(task["Definition"]).strip()
        instances = list(task["Instances"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        tally.bad_input(SOURCE, path, getattr(error, "lineno", None), f"not a task file ({error})")
        return None
    tally.seen[SOURCE] += 1
    english = all("English" in (task.get(key) or ["English"]) for key in ("Input_language", "Output_language"))
    if not categories & GENERATION:
        tally.remove(SOURCE, "not a generation task")
        return None
    if not english:
        tally.remove(SOURCE, "not English")
        return None
    usable = [i for i in instances if isinstance(i, dict) and str(i.get("input", "")).strip()
              and i.get("output") and len(str(i["output"][0]).strip()) >= MIN_OUTPUT_CHARS]
    if not usable:
        tally.remove(SOURCE, f"no instance with an output of >= {MIN_OUTPUT_CHARS} chars")
        return None
    instance = random.Random(f"{seed}:{path.stem}").choice(usable)
    return Candidate(
        conversations=[f"{definition}\n\n{instance['input'].strip()}", str(instance["output"][0]).strip()],
        source=SOURCE,
        provenance={"task": path.stem, "instance_id": instance.get("id"), "categories": sorted(categories),
                    "licence": LICENCE},
    )


def sample(directory: Path, count: int, seed: int, tally: Tally) -> list[Candidate]:
    files = sorted(directory.rglob("task*.json")) if directory.is_dir() else [directory]
    candidates = [c for path in files if (c := task_candidate(path, seed, tally)) is not None]
    random.Random(seed).shuffle(candidates)
    return candidates[:count]
