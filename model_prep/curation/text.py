"""HTML and plain-text clean-up shared by every source.

HTML becomes Markdown (markdownify): code blocks and lists survive; links keep only their text; images and
other markup go. A link whose text only points at it ("here", "this link", "[2]") is remembered: once the link
is gone such a sentence leans on nothing, which the style rules (style.py) count.
"""

import re
from dataclasses import dataclass, field

from markdownify import MarkdownConverter

# Link texts that mean nothing without the link: "see here", "this link", "source", footnote numbers.
POINTING_LINK_TEXT = re.compile(
    r"(?:here|there|this|that|link|this link|the link|source|sources|this one|this site|website|this website|"
    r"this article|this page|this video|this post|this answer|this question|\[?\d{1,2}\]?|click here|see here)",
    re.I,
)
_START, _END = "\x01", "\x02"  # brackets around a pointing link's text while converting; never in output


class _Converter(MarkdownConverter):
    """Links become their text (pointing ones bracketed), images disappear; the rest is markdownify's Markdown."""

    def convert_a(self, el, text, parent_tags):
        if POINTING_LINK_TEXT.fullmatch(text.strip()):
            return f"{_START}{text}{_END}"
        return text

    def convert_img(self, el, text, parent_tags):
        return ""


_converter = _Converter(heading_style="ATX", code_language="", bullets="-", escape_misc=False,
                        escape_asterisks=False, escape_underscores=False)
_BARE_URL = re.compile(r"https?://\S+")
_BLANK_LINES = re.compile(r"\n{3,}")
_POINTING = re.compile(f"{_START}(.*?){_END}", re.S)


@dataclass
class Converted:
    """An answer's Markdown, with where its pointing links' texts are."""

    text: str
    pointing_links: list[tuple[int, int]] = field(default_factory=list)


def convert(html: str) -> Converted:
    raw = _BLANK_LINES.sub("\n\n", _BARE_URL.sub("", _converter.convert(html))).strip()
    parts, spans, position = [], [], 0
    for match in _POINTING.finditer(raw):
        parts.append(raw[position:match.start()])
        start = sum(map(len, parts))
        parts.append(match.group(1))
        spans.append((start, start + len(match.group(1))))
        position = match.end()
    parts.append(raw[position:])
    text = "".join(parts).replace(_START, "").replace(_END, "")
    return Converted(text, spans)


def html_to_markdown(html: str) -> str:
    return convert(html).text


_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")


def convert_plain(text: str) -> Converted:
    """Plain text with Markdown links (a comment): each link becomes its text, pointing ones remembered."""
    parts, spans, position = [], [], 0
    for match in _MARKDOWN_LINK.finditer(text):
        parts.append(text[position:match.start()])
        if POINTING_LINK_TEXT.fullmatch(match.group(1).strip()):
            start = sum(map(len, parts))
            spans.append((start, start + len(match.group(1))))
        parts.append(match.group(1))
        position = match.end()
    parts.append(text[position:])
    return Converted(_BARE_URL.sub("", "".join(parts)), spans)


def plain_links_removed(text: str) -> str:
    """For plain-text sources (wikiHow, Reddit): Markdown links keep their text, images and bare URLs
    go."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    return _BLANK_LINES.sub("\n\n", _BARE_URL.sub("", text)).strip()
