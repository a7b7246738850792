"""HTML and plain-text clean-up shared by every source.

HTML becomes Markdown (markdownify): code blocks and lists survive; links keep only their text; images and
other markup go. A link whose text only points at it ("here", "this link", "[2]") is remembered: once the link
is gone such a sentence leans on nothing, which the style rules (style.py) count.
"""

import re
from dataclasses import dataclass, field

from bs4 import Tag
from markdownify import (  # type: ignore[attr-defined]  # the two helpers are not in its stubs
    MarkdownConverter,
    should_remove_whitespace_inside,
    should_remove_whitespace_outside,
)

# Link texts that mean nothing without the link: "see here", "this link", "source", footnote numbers.
POINTING_LINK_TEXT = re.compile(
    r"(?:here|there|this|that|link|this link|the link|source|sources|this one|this site|website|this website|"
    r"this article|this page|this video|this post|this answer|this question|\[?\d{1,2}\]?|click here|see here)",
    re.I,
)
_START, _END = "\x01", "\x02"  # brackets around a pointing link's text while converting; never in output
MAX_DEPTH = 32  # tags nested deeper keep only their text (real answers nest at most 7 deep)
_NEWLINE_RUN = re.compile(r"(?<![\t ])[\t ]*+[\r\n][\t \r\n]*+")  # a run of whitespace with a line break in it
_SPACE_RUN = re.compile(r"[\t ]+")


def collapse_whitespace(text: str) -> str:
    """markdownify's collapse outside <pre>: a run of whitespace with a line break becomes one, any other run one
    space. Its own pattern rescans a run from every position in it (quadratic in the run's length); this one
    starts only where a run starts."""
    return _SPACE_RUN.sub(" ", _NEWLINE_RUN.sub("\n", text))


class _Converter(MarkdownConverter):
    """Links become their text (pointing ones bracketed), images disappear; the rest is markdownify's Markdown,
    with the parts of it that took more than linear time on adversarial HTML replaced (runs of whitespace and
    blank lines, long ordered lists, deep nesting)."""

    def __init__(self) -> None:
        super().__init__(heading_style="ATX", code_language="", bullets="-", escape_misc=False,
                         escape_asterisks=False, escape_underscores=False)
        self.depth = 0  # of the tag being converted
        self.numbers: dict[int, int] = {}  # id of an <ol>'s item -> its number

    def convert(self, html: str) -> str:
        self.depth, self.numbers = 0, {}
        return super().convert(html)

    def process_tag(self, node, parent_tags=None):
        """Deeper than MAX_DEPTH a tag keeps only its text: markdownify recurses, copying the text, once a level."""
        if self.depth > MAX_DEPTH:
            text = node.get_text()
            return text if "pre" in (parent_tags or ()) else collapse_whitespace(text)
        self.depth += 1
        try:
            return super().process_tag(node, parent_tags)
        finally:
            self.depth -= 1

    def process_text(self, el, parent_tags=None):
        """markdownify's (without wrapping), its whitespace collapse made linear."""
        parent_tags = parent_tags or set()
        text = str(el) if "pre" in parent_tags else collapse_whitespace(str(el))
        if "_noformat" not in parent_tags:
            text = self.escape(text, parent_tags)
        if should_remove_whitespace_outside(el.previous_sibling) or (
                should_remove_whitespace_inside(el.parent) and not el.previous_sibling):
            text = text.lstrip(" \t\r\n")
        if should_remove_whitespace_outside(el.next_sibling) or (
                should_remove_whitespace_inside(el.parent) and not el.next_sibling):
            text = text.rstrip()
        return text

    def convert_pre(self, el, text, parent_tags):
        """markdownify's: leading blank lines and trailing blank space go, by str methods (its patterns rescan a
        run of blank lines from every position in it)."""
        if not text:
            return ""
        lead = len(text) - len(text.lstrip(" \n"))
        text = text[text.rfind("\n", 0, lead) + 1:].rstrip(" \n")
        return f"\n\n```{self.options['code_language']}\n{text}\n```\n\n"

    def convert_li(self, el, text, parent_tags):
        """markdownify's; an ordered item's number is looked up (markdownify counts the items before each one)."""
        parent = el.parent
        if not isinstance(parent, Tag) or parent.name != "ol":
            return super().convert_li(el, text, parent_tags)
        text = (text or "").strip()
        if not text:
            return "\n"
        if id(el) not in self.numbers:
            first = int(parent["start"]) if str(parent.get("start", "")).isdecimal() else 1
            self.numbers.update((id(item), first + index)
                                for index, item in enumerate(parent.find_all("li", recursive=False)))
        bullet = f"{self.numbers[id(el)]}. "
        text = "\n".join(" " * len(bullet) + line if line else "" for line in text.split("\n"))
        return f"{bullet}{text[len(bullet):]}\n"

    def convert_a(self, el, text, parent_tags):
        if POINTING_LINK_TEXT.fullmatch(text.strip()):
            return f"{_START}{text}{_END}"
        return text

    def convert_img(self, el, text, parent_tags):
        return ""


_converter = _Converter()
_BARE_URL = re.compile(r"https?://\S+")
_BLANK_LINES = re.compile(r"\n{3,}")
_POINTING = re.compile(f"{_START}([^{_START}{_END}]*){_END}")


@dataclass
class Converted:
    """An answer's Markdown, with where its pointing links' texts are."""

    text: str
    pointing_links: list[tuple[int, int]] = field(default_factory=list)


def convert(html: str) -> Converted:
    html = html.replace(_START, "").replace(_END, "")  # the brackets are ours alone
    raw = _BLANK_LINES.sub("\n\n", _BARE_URL.sub("", _converter.convert(html))).strip()
    parts, spans, position, length = [], [], 0, 0
    for match in _POINTING.finditer(raw):
        parts += [raw[position:match.start()], match.group(1)]
        length += match.start() - position
        spans.append((length, length + len(match.group(1))))
        length += len(match.group(1))
        position = match.end()
    parts.append(raw[position:])
    text = "".join(parts).replace(_START, "").replace(_END, "")
    return Converted(text, spans)


def html_to_markdown(html: str) -> str:
    return convert(html).text


# A Markdown link or image. The text may not hold a bracket and the target may not hold "[": a failed try then
# stops at the next "[", so the tries read apart stretches (with "[^\]]" every "[" could rescan to the end).
_MARKDOWN_LINK = re.compile(r"\[([^\[\]]+)\]\([^)\[]*\)")
_MARKDOWN_IMAGE = re.compile(r"!\[[^\[\]]*\]\([^)\[]*\)")


def convert_plain(text: str) -> Converted:
    """Plain text with Markdown links (a comment): each link becomes its text, pointing ones remembered."""
    parts, spans, position, length = [], [], 0, 0
    for match in _MARKDOWN_LINK.finditer(text):
        parts += [text[position:match.start()], match.group(1)]
        length += match.start() - position
        if POINTING_LINK_TEXT.fullmatch(match.group(1).strip()):
            spans.append((length, length + len(match.group(1))))
        length += len(match.group(1))
        position = match.end()
    parts.append(text[position:])
    return Converted(_BARE_URL.sub("", "".join(parts)), spans)


def plain_links_removed(text: str) -> str:
    """For plain-text sources (wikiHow, Reddit): Markdown links keep their text, images and bare URLs
    go."""
    text = _MARKDOWN_LINK.sub(r"\1", _MARKDOWN_IMAGE.sub("", text))
    return _BLANK_LINES.sub("\n\n", _BARE_URL.sub("", text)).strip()
