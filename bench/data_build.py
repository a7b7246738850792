"""Stack Exchange build throughput and memory: MB/s and peak RSS of reading a generated Posts.xml, at two sizes,
to show memory does not grow with the input, for two kinds of answers.

    python bench/data_build.py [--sizes-mb 100 1000] [--cases prose code] [--keep-top 500]

Each size and case is generated once (rows shaped like the real dump: questions with titles and HTML bodies,
answers with ParentId and scores, entity-escaped HTML), then read by
`model_prep.curation.stackexchange.read_site` in a fresh process: the whole streaming pass, top-question heap,
answer choice, HTML -> Markdown and the filters. Peak RSS is that process's maximum resident set size; MB/s is
per wall second, and per CPU second too (what other work on the machine does not slow).
Cases: "prose", answers of paragraphs with one short code block and a list (~1.6 KB per post); "code", answers
as a STEM site writes them (issue #26): a sentence ending in ":" right before a 20-80 line code block with
indented and blank lines, inline and display LaTeX ($...$, $$...$$, \\begin{align}), an HTML table or a Markdown
pipe table, sometimes the code block last (~2 KB per answer). The code case is what made the old rules backtrack.
Goal (issues #6, #26): memory flat in input size, >= 20 MB/s on this machine, for both cases.
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = ["matrix", "vector", "proof", "integral", "series", "limit", "function", "graph", "prime", "number",
         "field", "group", "ring", "space", "energy", "force", "wave", "charge", "particle", "cell", "protein",
         "enzyme", "code", "loop", "array", "pointer", "memory"]


def paragraph(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


CODE_LINES = ["def {name}(values, limit=10):", "    total = 0", "    for i, x in enumerate(values):",
              "        if x > limit:", "            total += x * i  # weight by position", "", "    return total",
              "result = {name}([1, 2, 3], limit=2)", "print(result)", "    ", "class {Name}:",
              "    def __init__(self):", "        self.items = {{}}", "        "]


def prose_answer(rng: random.Random) -> str:
    return "".join(f"<p>{paragraph(rng, 45)}</p>" for _ in range(5)) + \
        "<pre><code>for i in range(10):\n    print(i)\n</code></pre><ul><li>one</li><li>two</li></ul>"


def code_answer(rng: random.Random) -> str:
    """An answer as a STEM site writes it: code introduced by a colon, LaTeX, a table."""
    name = rng.choice(WORDS)
    code = "\n".join(rng.choice(CODE_LINES).format(name=name, Name=name.capitalize())
                     for _ in range(rng.randint(20, 80)))
    block = f"<p>{paragraph(rng, 20)} Here is the code to build it:</p>\n<pre><code>{escape(code)}\n</code></pre>\n"
    latex = (f"<p>The {name} is bounded: $\\frac{{a}}{{b}} \\le \\sum_{{i=1}}^{{n}} x_i$ for all $n$, and</p>\n"
             "<p>$$\\int_0^1 f(x)\\,dx = \\lim_{n \\to \\infty} \\frac{1}{n} \\sum_{i=1}^{n} f(i/n)$$</p>\n"
             "<p>\\begin{align} a &amp;= b + c \\\\ d &amp;= e^2 \\end{align}</p>\n")
    rows = "".join(f"<tr><td>{rng.choice(WORDS)}</td><td>{rng.randint(0, 999)}</td></tr>" for _ in range(6))
    table = f"<table><tr><th>{name}</th><th>value</th></tr>{rows}</table>\n" if rng.random() < 0.5 else \
        "<p>| name | value |<br>|---|---|<br>" + "<br>".join(f"| {rng.choice(WORDS)} | {rng.randint(0, 99)} |"
                                                     for _ in range(6)) + "</p>\n"
    parts = [block, latex, table, f"<p>{paragraph(rng, 30)}</p>\n"]
    rng.shuffle(parts)
    if rng.random() < 0.3:  # the code block last: the colon introduces it and nothing follows
        parts.remove(block)
        parts.append(block)
    return "".join(parts)


ANSWERS = {"prose": prose_answer, "code": code_answer}


def write_posts(path: Path, megabytes: int, case: str = "prose", seed: int = 0) -> int:
    """A Posts.xml of about `megabytes` MB with answers of the given case; returns its size in bytes."""
    rng = random.Random(seed)
    target = megabytes * 1_000_000
    written = 0
    post_id = 0
    question_ids: list[int] = []
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        while written < target:
            post_id += 1
            if not question_ids or rng.random() < 0.3:
                body = "".join(f"<p>{paragraph(rng, 40)}</p>" for _ in range(3))
                attributes = {"Id": post_id, "PostTypeId": 1, "Score": int(rng.paretovariate(1.2)),
                              "Title": paragraph(rng, 8).rstrip(".") + "?", "Body": body,
                              "OwnerUserId": rng.randrange(10**6), "AnswerCount": 2}
                question_ids.append(post_id)
                question_ids = question_ids[-1000:]
            else:
                body = ANSWERS[case](rng)
                attributes = {"Id": post_id, "PostTypeId": 2, "ParentId": rng.choice(question_ids),
                              "Score": int(rng.paretovariate(0.9)), "Body": body, "OwnerUserId": rng.randrange(10**6)}
            line = "  <row " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in attributes.items()) + " />\n"
            out.write(line)
            written += len(line.encode())
        out.write("</posts>\n")
    return path.stat().st_size


def measure(site_dir: Path, keep_top: int) -> dict:
    """Run the read in a child process; its wall and CPU time (the CPU time shows the cost on a busy machine) and
    peak RSS."""
    code = (
        "import json, resource, sys, time\n"
        "from pathlib import Path\n"
        "from model_prep.curation.stackexchange import read_site\n"
        "from model_prep.curation.records import Tally\n"
        "tally = Tally()\n"
        "started, cpu = time.perf_counter(), time.process_time()\n"
        f"site = read_site(Path({str(site_dir)!r}), tally, 0, {keep_top})\n"
        "usage = resource.getrusage(resource.RUSAGE_SELF)\n"
        "print(json.dumps({'seconds': time.perf_counter() - started, 'cpu_seconds': time.process_time() - cpu,"
        " 'questions': site.questions, 'candidates': len(site.candidates), 'peak_rss_mb': usage.ru_maxrss / 1024}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--cases", nargs="+", choices=sorted(ANSWERS), default=["prose", "code"])
    parser.add_argument("--keep-top", type=int, default=500)
    args = parser.parse_args()
    rows = []
    for case in args.cases:
        for megabytes in sorted(args.sizes_mb):
            with tempfile.TemporaryDirectory() as scratch:
                site = Path(scratch) / "bench.stackexchange.com"
                site.mkdir()
                started = time.perf_counter()
                size = write_posts(site / "Posts.xml", megabytes, case)
                print(f"{case}: generated {size / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s", flush=True)
                result = measure(site, args.keep_top)
                rows.append({"case": case, "mb": size / 1e6, **result, "mb_per_s": size / 1e6 / result["seconds"]})
                print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'case':>6} {'input MB':>9} {'seconds':>8} {'CPU s':>6} {'MB/s':>7} {'MB/CPU s':>9} {'peak RSS MB':>12} "
          f"{'questions':>10} {'kept':>5}")
    for row in rows:
        print(f"{row['case']:>6} {row['mb']:9.0f} {row['seconds']:8.1f} {row['cpu_seconds']:6.1f} "
              f"{row['mb_per_s']:7.1f} {row['mb'] / row['cpu_seconds']:9.1f} {row['peak_rss_mb']:12.0f} "
              f"{row['questions']:10d} {row['candidates']:5d}")
    for case in args.cases:
        small, *_, large = [row for row in rows if row["case"] == case] * 2  # one size: compared with itself
        print(f"{case}: peak RSS, largest / smallest input: {large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x for "
              f"{large['mb'] / small['mb']:.0f}x the input (goal: flat)")
    print("throughput goal >= 20 MB/s")


if __name__ == "__main__":
    main()
