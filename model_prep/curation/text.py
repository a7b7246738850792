"""Text clean-up and the paper's answer filters, shared by every source.

HTML becomes Markdown (markdownify): code blocks and lists survive; links keep only their text; images and
other markup go. Each filter is a named predicate so the build can count what every rule removed.
"""

import re
from collections.abc import Callable

from markdownify import MarkdownConverter


class _Converter(MarkdownConverter):
    """Links become their text, images disappear; the rest is markdownify's Markdown (fenced code, lists)."""

    def convert_a(self, el, text, parent_tags):
        return text

    def convert_img(self, el, text, parent_tags):
        return ""


_converter = _Converter(heading_style="ATX", code_language="", bullets="-", escape_misc=False,
                        escape_asterisks=False, escape_underscores=False)
_BARE_URL = re.compile(r"https?://\S+")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_markdown(html: str) -> str:
    text = _converter.convert(html)
    return _BLANK_LINES.sub("\n\n", _BARE_URL.sub("", text)).strip()


def plain_links_removed(text: str) -> str:
    """For plain-text sources (wikiHow, Reddit): Markdown links keep their text, images and bare URLs go."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    return _BLANK_LINES.sub("\n\n", _BARE_URL.sub("", text)).strip()


# Outside code blocks only: code often says `my_var` or `I` as a loop index.
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
_FIRST_PERSON = re.compile(r"\b(I|I'm|I've|I'd|I'll|me|my|mine|myself)\b")
_OTHER_ANSWERS = re.compile(
    r"\b(as mentioned|as others (have )?(said|mentioned|pointed out)|other answers?|previous answers?|"
    r"above answers?|answer above|answer below|the accepted answer|stack ?exchange|stack ?overflow|"
    r"this (site|question)|edit:|upvote|downvote)\b",
    re.I,
)


def prose(text: str) -> str:
    return _CODE.sub(" ", text)


def has_first_person(text: str) -> bool:
    return bool(_FIRST_PERSON.search(prose(text)))


def refers_to_others(text: str) -> bool:
    return bool(_OTHER_ANSWERS.search(prose(text)))


def length_between(low: int, high: int) -> Callable[[str], bool]:
    return lambda text: low <= len(text) <= high


Rule = tuple[str, Callable[[str], bool]]  # (name, keep-predicate)


def answer_rules(min_chars: int = 1200, max_chars: int = 4096) -> list[Rule]:
    """The paper's Stack Exchange answer filters, in the order they are counted."""
    return [
        (f"length {min_chars}-{max_chars} chars", length_between(min_chars, max_chars)),
        ("no first person", lambda text: not has_first_person(text)),
        ("no reference to other answers or the site", lambda text: not refers_to_others(text)),
    ]


def first_failed(rules: list[Rule], text: str) -> str | None:
    """The name of the first rule `text` fails, or None when it passes them all."""
    return next((name for name, keep in rules if not keep(text)), None)
