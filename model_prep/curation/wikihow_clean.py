"""What a wikiHow article loses on its way to a LIMA example, each clean-up a named rule for the report.

The paper's own: "This article" / "This wikiHow" become "The following answer"; the Tips, Warnings and
reference sections go. And what a scrape of the live site leaves, which the public dumps do not have:

- citation residue: footnote marks ("[2]", "[2][3]", "[2](https://...)" from a Markdown dump) and the reference
  badges wikiHow prints beside them ("X Research source", "X Expert Source", "X Trustworthy Source", also glued
  to the word or full stop before them). A mark right after an identifier and followed by code (`a[2] = 1`,
  `m[1][2]`, `a[2].x`) is an index, not a footnote, and stays; so does everything in Markdown code and any
  bracket that holds no 1-3 digit number ("Step [optional]", "[2020]").
- title suffixes: " - wikiHow" (and "wikiHow Life", ...), " | wikiHow", "(with Pictures)", "(Step-by-Step)",
  ": 10 Steps", ": 14+ Easy Methods", ": Step-by-Step Guide for 4 Knots"; and a count in front, "3 Easy Ways to
  Make a Resume", becomes "How to Make a Resume" (wikiHow's casing kept, so both titles the site gives one
  article make the same prompt).
- a step's heading repeated as its paragraph's start ("Choose a template" over "Choose a template or design
  your own..."): the heading goes, the paragraph keeps the words.

`residue` is the last check: what still looks like the scrape after these (a badge without its X, "Go to source",
the site's name, a title suffix); the caller drops and reports such an article instead of writing it.

Every pattern is linear by construction: no quantified group can match the same text two ways, and the title
suffixes are searched in a bounded window at the end (tests/test_curation_wikihow.py times them on 100 kB).
"""

import re
from collections.abc import Callable

from model_prep.curation.style import Match, blank_code, highlight

Change = tuple[str, str]  # the text after a clean-up, and an example of what it changed ("" when nothing)

THIS_ARTICLE = "'This article' made 'The following answer'"
SECTIONS = "Tips, Warnings and reference sections removed"
CITATIONS = "citation marks removed"
TITLE_SUFFIX = "title suffix removed"
TITLE_COUNT = "title 'N ways to' made 'How to'"
REPEATED_HEADING = "repeated heading removed"

_MARK = r"\[\d{1,3}\](?:\((?:https?://|/|#)[^()\s\[\]]*\))?"
_BADGE = r"X ?(?:Research|Expert|Trustworthy) [Ss]ource(?: Go to source)?"
_CITATION = re.compile(rf"(?:{_MARK}|{_BADGE})(?: ?(?:{_MARK}|{_BADGE}))*")
_CODE_AFTER = re.compile(r"[\[(]|\.\w| ?(?:=|[-+*/%<>!&|^]=?[ \w])")  # what follows an index in code
_CLOSING = frozenset(".,;:!?)]}\"'\u2019\u201d\u2026")

# Title words: each alternative is one word, words are separated by one space or hyphen, so a run of them
# parses one way only.
_WORD = (r"(?:easy|easiest|simple|quick|fast|best|great|good|top|proven|expert|backed|approved|tested|helpful|"
         r"useful|effective|smart|clever|creative|fun|cool|essential|practical|detailed|complete|ultimate|full|"
         r"beginner's|beginners|beginner|step|by|illustrated|basic|natural|different|surefire|foolproof|safe)")
_COUNTED = (r"(?:steps|ways|methods|tips|ideas|guide|tricks|techniques|strategies|hacks|examples|instructions|"
            r"options|tutorial|everything you need to know|what you need to know)")
_MEDIA = r"(?:pictures|examples|images|photos|videos?|templates|samples|recipes|diagrams)"
_TITLE_SUFFIX = re.compile(
    r"(?: ?[-|\u2013\u2014:] ?wikihow(?: [a-z]+)?"  # the site's name, or a sister site's ("wikiHow Life")
    rf"| ?\((?:with {_MEDIA}(?:,? (?:and|&) {_MEDIA})?|{_WORD}(?:[ -]{_WORD})*(?: {_COUNTED})?)\)"
    rf"|: (?:(?:an?|the|\d+\+?) )?(?:{_WORD}[ -])*{_COUNTED}\b[^:\n?]{{0,60}}"  # ": 10 Steps", ": An Easy Guide"
    r")\??\Z", re.I)
_SUFFIX_WINDOW = 120  # no suffix is longer: each search looks at the title's last characters only
MAX_SUFFIXES = 4  # stacked on one title (real ones have up to 3: ": 10 Steps (with Pictures) - wikiHow")
_COUNT_LEAD = re.compile(rf"(?:the |\d+\+? )?(?:{_WORD}[ -])*(?:ways|methods|steps|tips|tricks) to (?=\S)", re.I)

_RESIDUE = (
    ("reference badge", re.compile(r"\b(?:Research source|Expert Source|Trustworthy Source)\b|(?i:\bgo to source\b)")),
    ("names wikiHow", re.compile(r"(?i:\bwikihow\b)")),
    ("title suffix",
     re.compile(rf"(?i:\((?:with {_MEDIA}|step[- ]by[- ]step)\b\)?|: \d+\+? (?:{_WORD} )*{_COUNTED}\b)")),
)


def replaced(pattern: re.Pattern[str], replacement: str) -> Callable[[str], Change]:
    """A clean-up that substitutes `replacement` for every match of `pattern`."""
    def clean(text: str) -> Change:
        found = pattern.search(text)
        if found is None:
            return text, ""
        return pattern.sub(replacement, text), marked(text, found.start(), found.end())
    return clean


this_article_rewritten = replaced(re.compile(r"\bThis (?:article|wikiHow)\b"), "The following answer")
sections_removed = replaced(
    re.compile(r"\n(?:Tips|Warnings|Things You'll Need|References|Sources and Citations|Video)\n.*", re.S), "")


def marked(text: str, start: int, end: int) -> str:
    """The report's example: a line of context, the changed words between »«."""
    return highlight(text, Match("", start, end, text[start:end]))


def citations_removed(text: str) -> Change:
    """The text without footnote marks and reference badges, the words around them joined by one space (none
    before punctuation or at a line's edge)."""
    prose = blank_code(text)
    parts, position, example = [], 0, ""
    for found in _CITATION.finditer(prose):
        start, end = found.span()
        if _indexes_code(prose, start, end):
            continue
        example = example or marked(text, start, end)
        while start > position and text[start - 1] in " \t":
            start -= 1
        while end < len(text) and text[end] in " \t":
            end += 1
        before, after = text[start - 1:start], text[end:end + 1]
        joined = bool(before and after) and not (before.isspace() or after.isspace() or after in _CLOSING
                                                 or before in "([{")
        parts += [text[position:start], " " if joined else ""]
        position = end
    return "".join(parts) + text[position:], example


def _indexes_code(text: str, start: int, end: int) -> bool:
    """Whether the marks at text[start:end] index an identifier in code (`a[2] = 1`), so are not footnotes."""
    before = text[start - 1:start]
    return text[start] == "[" and (before.isalnum() or before in ("_", ")", "]")) and bool(_CODE_AFTER.match(text, end))


def title_suffix_removed(title: str) -> Change:
    """The title without the suffixes a page's <title> adds, up to MAX_SUFFIXES of them (more are left for
    `residue` to report); never the whole title."""
    end = len(title)
    for _ in range(MAX_SUFFIXES):
        found = _TITLE_SUFFIX.search(title, max(0, end - _SUFFIX_WINDOW), end)
        if found is None or found.start() == 0:
            break
        end = found.start()
    return title[:end], "" if end == len(title) else marked(title, end, len(title))


def count_made_how_to(title: str) -> Change:
    """"3 Easy Ways to Make a Resume" -> "How to Make a Resume": the question the article answers."""
    found = _COUNT_LEAD.match(title)
    if found is None:
        return title, ""
    return f"How to {title[found.end():]}", marked(title, 0, found.end())


def repeated_headings_removed(text: str) -> Change:
    """The text without each one-line paragraph whose next paragraph starts with the same words."""
    blocks = text.split("\n\n")
    kept, position, example = [], 0, ""
    for block, following in zip(blocks, [*blocks[1:], ""], strict=True):
        if _repeats(block, following):
            example = example or marked(text, position, position + len(block))
        else:
            kept.append(block)
        position += len(block) + 2
    return "\n\n".join(kept), example


def _repeats(heading: str, paragraph: str) -> bool:
    """Whether `paragraph` opens with the one-line `heading` (case and spacing aside; the heading's own full stop
    or colon too), the heading ending at a word's end."""
    lead = " ".join(heading.split()).rstrip(".:").casefold()
    if not lead or "\n" in heading.strip():
        return False
    opening = " ".join(paragraph.lstrip()[:2 * len(heading) + 8].split()).casefold()
    return opening.startswith(lead) and not opening[len(lead):len(lead) + 1].isalnum()


def residue(text: str) -> Match | None:
    """The first thing in a cleaned prompt or answer that still looks like the scrape, else None."""
    prose = blank_code(text)
    for found in _CITATION.finditer(prose):
        if not _indexes_code(prose, found.start(), found.end()):
            return _residue("citation mark or badge", text, found)
    for rule, pattern in _RESIDUE:
        if left := pattern.search(prose):
            return _residue(rule, text, left)
    return None


def _residue(rule: str, text: str, found: re.Match[str]) -> Match:
    return Match(rule, found.start(), found.end(), found.group(), marked(text, found.start(), found.end()))
