"""Stack Exchange build throughput and memory: MB/s and peak RSS of reading a generated Posts.xml, at two sizes,
to show memory does not grow with the input.

    python bench/data_build.py [--sizes-mb 100 1000] [--keep-top 500]

Each size is generated once (rows shaped like the real dump: questions with titles and HTML bodies, answers
with ParentId and scores, ~1.6 KB per post, entity-escaped HTML), then read by
`model_prep.curation.stackexchange.read_site` in a fresh process: the whole streaming pass, top-question heap,
answer choice, HTML -> Markdown and the filters. Peak RSS is that process's maximum resident set size.
Goal (issue #6): memory flat in input size, >= 20 MB/s on this machine.
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import quoteattr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = ["matrix", "vector", "proof", "integral", "series", "limit", "function", "graph", "prime", "number",
         "field", "group", "ring", "space", "energy", "force", "wave", "charge", "particle", "cell", "protein",
         "enzyme", "code", "loop", "array", "pointer", "memory"]


def paragraph(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def write_posts(path: Path, megabytes: int, seed: int = 0) -> int:
    """A Posts.xml of about `megabytes` MB; returns its size in bytes."""
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
                body = "".join(f"<p>{paragraph(rng, 45)}</p>" for _ in range(5)) + \
                    "<pre><code>for i in range(10):\n    print(i)\n</code></pre><ul><li>one</li><li>two</li></ul>"
                attributes = {"Id": post_id, "PostTypeId": 2, "ParentId": rng.choice(question_ids),
                              "Score": int(rng.paretovariate(0.9)), "Body": body, "OwnerUserId": rng.randrange(10**6)}
            line = "  <row " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in attributes.items()) + " />\n"
            out.write(line)
            written += len(line.encode())
        out.write("</posts>\n")
    return path.stat().st_size


def measure(site_dir: Path, keep_top: int) -> dict:
    """Run the read in a child process; its wall time and peak RSS."""
    code = (
        "import json, resource, sys, time\n"
        "from pathlib import Path\n"
        "from model_prep.curation.stackexchange import read_site\n"
        "from model_prep.curation.records import Tally\n"
        "tally = Tally()\n"
        "started = time.perf_counter()\n"
        f"site = read_site(Path({str(site_dir)!r}), tally, 0, {keep_top})\n"
        "print(json.dumps({'seconds': time.perf_counter() - started, 'questions': site.questions,"
        " 'candidates': len(site.candidates),"
        " 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--keep-top", type=int, default=500)
    args = parser.parse_args()
    rows = []
    for megabytes in sorted(args.sizes_mb):
        with tempfile.TemporaryDirectory() as scratch:
            site = Path(scratch) / "bench.stackexchange.com"
            site.mkdir()
            started = time.perf_counter()
            size = write_posts(site / "Posts.xml", megabytes)
            print(f"generated {size / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s", flush=True)
            result = measure(site, args.keep_top)
            rows.append({"mb": size / 1e6, **result, "mb_per_s": size / 1e6 / result["seconds"]})
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'input MB':>9} {'seconds':>8} {'MB/s':>7} {'peak RSS MB':>12} {'questions':>10} {'kept':>5}")
    for row in rows:
        print(f"{row['mb']:9.0f} {row['seconds']:8.1f} {row['mb_per_s']:7.1f} {row['peak_rss_mb']:12.0f} "
              f"{row['questions']:10d} {row['candidates']:5d}")
    if len(rows) > 1:
        print(f"\npeak RSS, largest / smallest input: {rows[-1]['peak_rss_mb'] / rows[0]['peak_rss_mb']:.2f}x for "
              f"{rows[-1]['mb'] / rows[0]['mb']:.0f}x the input (goal: flat); throughput goal >= 20 MB/s")


if __name__ == "__main__":
    main()
