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
    meta = root / "math.meta.stackexchange.com"  # about the site: skipped, and said so
    meta.mkdir()
    (meta / "Posts.xml").write_text(xml_rows([question(1, "Should we allow homework questions here?", 50)]))
    (root / "chemistry.stackexchange.com.7z").write_bytes(b"7z\xbc\xaf\x27\x1c")  # not extracted yet
    (root / "biology.stackexchange.com").mkdir()
    (root / "biology.stackexchange.com" / "Users.xml").write_text(xml_rows([]))  # a site without its posts
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


def comment(comment_id: int, post_id: int, user: int | str, text: str, minute: int) -> str:
    """A Comments.xml row as the dumps write it; a user given by name is a deleted account (no UserId)."""
    who = {"UserId": user} if isinstance(user, int) else {"UserDisplayName": user}
    return post(Id=comment_id, PostId=post_id, Score=0, Text=text, CreationDate=f"2021-03-04T10:{minute:02d}:00.000",
                **who, ContentLicense="CC BY-SA 4.0")


def write_style_site(site: Path) -> Path:
    """A STEM site whose answers carry the patterns real dumps hold, one rule each, plus comment chains under
    answers in the dumps' real layout (dates out of id order, @mentions, deleted users, thanks)."""
    site.mkdir(parents=True)

    def styled(post_id: int, title: str, extra: str, body: str = "") -> list[str]:
        return [question(post_id, title, 90 - post_id),
                post(Id=post_id + 1, PostTypeId=2, ParentId=post_id, Score=30, OwnerUserId=8, CommentCount=0,
                     Body=body or answer_html(title.split()[2], extra))]

    def threaded(post_id: int, title: str, comments: int) -> list[str]:
        return [question(post_id, title, 20),
                post(Id=post_id + 1, PostTypeId=2, ParentId=post_id, Score=5, OwnerUserId=8, CommentCount=comments,
                     Body=answer_html(title.split()[2]))]

    rows = [question(1, "How strong is a random password of twelve letters?", 90),
            post(Id=2, PostTypeId=2, ParentId=1, Score=40, OwnerUserId=8, CommentCount=3,
                 Body=answer_html("password"))]
    rows += styled(3, "How are salted hashes stored in a database?", "",
                   body=answer_html("hashes") + "<p>Edit: the figures assume one GPU. Edits on that are welcome.</p>")
    rows += styled(5, "Why do certificates expire after a year?", "There is more on renewal in the comments below. ")
    rows += styled(7, "What does a timing attack measure exactly?", "See the answers to other questions for details. ")
    rows += styled(9, "Is disk encryption enough on a laptop?", "As @Thomas says, a cold boot is the weak point. ")
    rows += styled(11, "Which block cipher mode should a file format use?",
                   "More details from Bram on crypto.se about the modes. ")
    rows += styled(13, "How does a padding oracle leak the plaintext?",
                   "Notice, carefully in the above picture, that each byte leaks. ")
    rows += threaded(30, "How many guesses does a diceware passphrase take?", 7)
    rows += threaded(40, "Should backups be encrypted before upload?", 2)
    rows += threaded(50, "Is a hardware key safer than an app?", 2)
    rows += threaded(60, "Which password hash fits a small server?", 2)
    (site / "Posts.xml").write_text(xml_rows(rows))
    (site / "Comments.xml").write_text(xml_rows([
        comment(201, 31, 7, "@alice Does the same hold for a passphrase of six words?", 0),
        comment(205, 31, 7, "And what if an attacker knows the word list?", 1),
        comment(203, 31, "deleted-user", "Great answer.", 3),  # a third person: skipped
        comment(202, 31, 8, "@bob Yes: six words from a list of 7,776 give about 77 bits, and the count "
                            "assumes the list is known.", 10),  # a lower id than 205, written after it
        comment(210, 31, 7, "How long would that take to crack offline?", 20),
        comment(211, 31, 8, "At a trillion guesses a second, longer than the age of the universe.", 30),
        comment(212, 31, 7, "Thanks, that worked.", 40),
        comment(220, 41, 7, "Thanks, that worked.", 0),
        comment(230, 51, 7, "Would this work on Windows too?", 0),
        comment(240, 61, 7, "Which hash should I pick for a Raspberry Pi?", 0),
        comment(241, 61, 8, "As noted in my comment on the question, Argon2 with a small memory cost.", 5),
        comment(250, 2, 7, "Is twelve enough for a bank?", 0),
    ]))
    return site


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


PARAGRAPH = "Fill the kettle with fresh cold water and bring it to a rolling boil before you measure the leaves. "


def write_wikihow_sections(path: Path) -> Path:
    """wikihowSep.csv's layout: one row per paragraph, an article's rows together, no category."""
    rows = [{"overview": "Tea rewards a little care.", "headline": f"Step {i}.", "text": PARAGRAPH * 2,
             "sectionLabel": "Steps", "title": "How to Brew Tea"} for i in range(3)]
    rows += [{"overview": "", "headline": "Pick a bean.", "text": PARAGRAPH.replace("leaves", "beans") * 2,
              "sectionLabel": label, "title": "Roast Coffee at Home"} for label in ("Choosing", "Choosing", "Roasting")]
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["overview", "headline", "text", "sectionLabel", "title"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_month(directory: Path) -> Path:
    """A month of Pushshift as it really is: comments (RC_) and submissions (RS_) in separate files, records
    of every era mixed (2006 records lack over_18 and selftext, scores come as strings or null), other
    subreddits in between, deleted stories, a record without a subreddit."""
    directory.mkdir(parents=True)
    other = [{"id": f"o{i}", "subreddit": "aww", "title": "A cat", "score": 5} for i in range(5)]
    submissions = [
        {"id": "old1", "subreddit": "WritingPrompts", "title": "[WP] A clock that runs backwards", "score": "75",
         "created_utc": "1160000000"},  # 2006: string score and date, no over_18
        {"id": "new1", "subreddit": "WritingPrompts", "title": "[WP] The moon sends a letter", "score": 1200,
         "over_18": False, "selftext": "", "subreddit_name_prefixed": "r/WritingPrompts", "created_utc": 1700000000},
        {"id": "new2", "subreddit": "WritingPrompts", "title": "[WP] Ghosts unionise", "score": None},  # null score
        {"id": "q1", "subreddit": "AskReddit", "title": "What skill took you longest to learn?", "score": 5000},
        {"title": "A record with no subreddit", "score": 9},
    ]
    comments = [
        {"id": "s1", "subreddit": "WritingPrompts", "link_id": "t3_new1", "parent_id": "t3_new1", "body": STORY,
         "score": 700, "author": "a"},
        {"id": "s2", "subreddit": "WritingPrompts", "link_id": "t3_old1", "parent_id": "t3_old1", "body": "[removed]",
         "score": 900, "author": "[deleted]"},
        {"id": "s3", "subreddit": "WritingPrompts", "link_id": "t3_old1", "parent_id": "t3_old1",
         "body": STORY.replace("Mars", "Venus"), "score": "40", "author": "b"},
    ]
    for name, records in (("RC_2019-01.zst", comments + other), ("RS_2019-01.zst", other + submissions)):
        text = "".join(json.dumps(r) + "\n" for r in records)
        (directory / name).write_bytes(zstandard.ZstdCompressor().compress(text.encode()))
    return directory
