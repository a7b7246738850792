"""Small inputs in each source's real format, written for these tests: a Stack Exchange dump (Posts.xml and
Comments.xml per site, one broken), a wikiHow CSV, a zstandard Pushshift file, Super-NaturalInstructions task
files and a hand-written JSONL. Each holds rows that a given filter must drop, next to rows it must keep."""

import csv
import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

import zstandard

SENTENCE = ("The proof works by contradiction: assume the square root is a ratio of two whole numbers in lowest "
            "terms, square both sides, and follow what that says about the parity of each number. ")


def answer_html(topic: str, extra: str = "", sentences: int = 9) -> str:
    """An answer of ~1,500 characters with a link, an image, a code block and a list: all the HTML the
    clean-up must handle."""
    body = SENTENCE.replace("square root", topic) * sentences
    return (f"<p>{body}{extra}</p><p>See <a href='https://example.org/x'>the classic argument</a> for details."
            f"<img src='https://i.example.org/p.png' alt='diagram'/></p>"
            f"<pre><code>def check(n):\n    return n % 2 == 0\n</code></pre>"
            f"<ul><li>first step</li><li>second step</li></ul>")


def post(**attributes: object) -> str:
    return "  <row " + " ".join(f"{key}={quoteattr(str(value))}" for key, value in attributes.items()) + " />"


def xml_rows(rows: list[str]) -> str:
    return '<?xml version="1.0" encoding="utf-8"?>\n<posts>\n' + "\n".join(rows) + "\n</posts>\n"


def question(post_id: int, title: str, score: int, accepted: int | None = None, **extra: object) -> str:
    attributes = {"Id": post_id, "PostTypeId": 1, "Score": score, "Title": title, "OwnerUserId": 7,
                  "Body": f"<p>Details about: {title} Looking for a clear explanation with an example.</p>", **extra}
    if accepted:
        attributes["AcceptedAnswerId"] = accepted
    return post(**attributes)


def answer(post_id: int, parent: int, score: int, body: str, owner: int = 8) -> str:
    return post(Id=post_id, PostTypeId=2, ParentId=parent, Score=score, Body=body, OwnerUserId=owner)


def write_stackexchange(root: Path) -> Path:
    """math (STEM): 2 questions that pass and one per rule that must drop; cooking (other): 1 that passes;
    physics: broken XML after one good question; es.stackoverflow: excluded by default."""
    math = root / "math.stackexchange.com"
    math.mkdir(parents=True)
    (math / "Posts.xml").write_text(xml_rows([
        question(1, "Why is the square root of two irrational?", 90, accepted=2),
        answer(2, 1, 40, answer_html("square root")),
        answer(3, 1, 60, answer_html("square root of three")),  # higher score, but 2 is accepted and scores >= 10
        question(4, "How can a closed question still be asked here?", 80, ClosedDate="2020-01-01"),
        question(5, "Help please", 70),  # title too short to stand alone
        question(6, "What does the diagram in this picture show?", 65, Body="<p>See <img src='x.png'/></p>"),
        question(10, "What is the derivative of the exponential function?", 60),
        answer(11, 10, 5, answer_html("exponential")),  # score below 10
        question(12, "What is a prime number in simple terms?", 55),
        answer(13, 12, 30, "<p>A number with exactly two divisors.</p>"),  # too short
        question(14, "How does induction prove statements for all numbers?", 50),
        answer(15, 14, 30, answer_html("induction", "I think my favourite version is the strong one. ")),
        question(16, "Why does the harmonic series diverge to infinity?", 45),
        answer(17, 16, 30, answer_html("harmonic series", "As mentioned in other answers, grouping works. ")),
        question(18, "How is the determinant of a matrix computed by hand?", 40, accepted=19),
        answer(19, 18, 3, answer_html("determinant", "Cofactor expansion is one way. ")),  # accepted, too few votes
        answer(20, 18, 25, answer_html("determinant")),  # so the top answer is taken
    ]))
    (math / "Comments.xml").write_text(xml_rows([
        post(Id=100, PostId=20, Score=2, UserId=7, Text="Does this also work for a 4x4 matrix?"),
        post(Id=101, PostId=20, Score=1, UserId=9, Text="Nice answer."),  # a third person: skipped
        post(Id=102, PostId=20, Score=3, UserId=8, Text="@asker Yes, expand along any row; the cost grows fast."),
        post(Id=103, PostId=20, Score=0, UserId=7, Text="Thanks!"),  # a trailing user turn is dropped
    ]))
    cooking = root / "cooking.stackexchange.com"
    cooking.mkdir()
    (cooking / "Posts.xml").write_text(xml_rows([
        question(1, "How long should pasta rest after draining it?", 30),
        answer(2, 1, 12, answer_html("pasta water")),
        question(3, "Which knife is best for slicing ripe tomatoes?", "many"),  # a score that is not a number
    ]))
    physics = root / "physics.stackexchange.com"
    physics.mkdir()
    good = xml_rows([question(1, "Why is the sky blue during the day?", 30),
                     answer(2, 1, 20, answer_html("scattering"))]).removesuffix("</posts>\n")
    (physics / "Posts.xml").write_text(good + '  <row Id="3" PostTypeId="1" Title="broken\n')
    excluded = root / "es.stackoverflow.com"
    excluded.mkdir()
    (excluded / "Posts.xml").write_text(xml_rows([question(1, "¿Cómo se ordena una lista en Python?", 99),
                                                  answer(2, 1, 50, answer_html("ordenar"))]))
    return root


WIKIHOW_TEXT = ("This article explains each step. Crack the eggs into a bowl and whisk them with a pinch of salt "
                "until smooth. Heat butter in a pan over medium heat, pour in the eggs, and tilt the pan so they "
                "cover it evenly. See [the video](https://wikihow.example/v) for the folding step. ")


def write_wikihow(path: Path) -> Path:
    rows = [
        {"headline": "Whisk well.", "title": "How to Cook an Omelette", "text": WIKIHOW_TEXT, "category": "Food"},
        {"headline": "", "title": "How to Boil an Egg", "text": WIKIHOW_TEXT.replace("whisk", "boil"),
         "category": "Food"},
        {"headline": "", "title": "Fold a Paper Plane", "text": WIKIHOW_TEXT.replace("eggs", "paper"),
         "category": "Hobbies"},
        {"headline": "", "title": "How to Tie a Tie", "text": "Too short.", "category": "Style"},
        {"headline": "", "title": "", "text": "A row without a title.", "category": "Style"},
    ]
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["headline", "title", "text", "category"])
        writer.writeheader()
        writer.writerows(rows)
    return path


STORY = "The last lighthouse keeper on Mars counted the dust storms the way sailors once counted waves. " * 8


def write_reddit(path: Path) -> Path:
    records = [
        {"id": "wp1", "subreddit": "WritingPrompts", "title": "[WP] The last lighthouse on Mars", "score": 900},
        {"id": "wp2", "subreddit": "WritingPrompts", "title": "[WP] A dragon opens a bakery", "score": 10},
        {"id": "wp3", "subreddit": "WritingPrompts", "title": "[OT] Monthly contest results", "score": 5000},
        {"id": "c1", "subreddit": "WritingPrompts", "link_id": "t3_wp1", "parent_id": "t3_wp1", "body": STORY,
         "score": 300, "author": "writer"},
        {"id": "c2", "subreddit": "WritingPrompts", "link_id": "t3_wp1", "parent_id": "t1_c1",
         "body": STORY.upper(), "score": 999, "author": "replier"},  # a reply, not a story
        {"id": "c3", "subreddit": "WritingPrompts", "link_id": "t3_wp1", "parent_id": "t3_wp1", "body": "[deleted]",
         "score": 500},
        {"id": "ar1", "subreddit": "AskReddit", "title": "What is the best advice you have ever received?",
         "selftext": "", "score": 12000},
        {"id": "ar2", "subreddit": "AskReddit", "title": "What should I do about my landlord?",
         "selftext": "Long story about a landlord.", "score": 8000},
        {"id": "ar3", "subreddit": "AskReddit", "title": "Which book changed how you think?", "selftext": "",
         "score": 20},
    ]
    lines = [json.dumps(r) for r in records]
    lines.insert(3, "{not json")
    path.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode()))
    return path


def write_sni(directory: Path) -> Path:
    directory.mkdir(parents=True)

    def task(name: str, categories: list[str], language: str = "English", output: str = "") -> None:
        output = output or "A short, faithful summary of the passage that keeps its main claim and its example."
        (directory / f"{name}.json").write_text(json.dumps({
            "Definition": [f"In this task you {name.split('_', 1)[1].replace('_', ' ')}."],
            "Categories": categories, "Input_language": [language], "Output_language": [language],
            "Instances": [{"id": f"{name}-{i}", "input": f"Passage number {i} about tides and the moon.",
                           "output": [output]} for i in range(3)],
        }))

    task("task001_summarize_a_passage", ["Summarization"])
    task("task002_classify_sentiment", ["Sentiment Analysis"])
    task("task003_resumir_un_texto", ["Summarization"], language="Spanish")
    task("task004_write_a_title", ["Title Generation"], output="Tides")  # outputs too short
    (directory / "task005_broken.json").write_text('{"Definition": ["cut off"')
    return directory


LONG_PROMPT = ("Explain how the tides depend on the moon and the sun over a month, why spring tides and neap tides "
               "alternate, and what a coastal town should plan for when the two line up in")


def write_authored(path: Path) -> Path:
    """Six rows for train/dev, one asked for train, two test prompts, a train row repeating a test prompt
    (exact duplicate) and one nearly repeating another row (near duplicate), and four invalid lines."""
    rows = [{"conversations": [f"Tell me about topic {i}.", f"Topic {i} is interesting because of its history."]}
            for i in range(6)]
    rows.append({"conversations": [f"{LONG_PROMPT} spring.", "Plan for the highest water."], "split": "train"})
    rows += [{"conversations": [f"What would you ask about test topic {i}?"], "split": "test"} for i in range(2)]
    rows.append({"conversations": ["What would you ask about test topic 0?", "Something."], "split": "train"})
    rows.append({"conversations": [f"{LONG_PROMPT} autumn.", "Plan for the highest water."], "split": "train"})
    lines = [json.dumps(r) for r in rows]
    lines += [
        json.dumps({"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "hello"}]}),
        json.dumps({"conversations": ["A question", "   "]}),
        json.dumps({"conversations": ["A test prompt with an answer", "An answer"], "split": "test"}),
        "not json at all",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
