"""The paper's style rule for Stack Exchange answers, as named rules a person can audit.

LIMA kept answers that read as a helpful assistant's reply: not in the first person, and not leaning on what a
chat has no place for: the site's comments, other answers or questions, other users, other sites, thanks, edit
notes, credits, or a picture or link the clean-up removed. Each rule is a pattern over the answer's prose (code
is never matched). Where a small cut keeps the answer clean (a trailing "Edit:" paragraph, a credits line, a
closing "Hope this helps") the cut is made and counted as a rewrite; anything else drops the answer.

`review` returns every match, not just the first, so the filters can be measured against labels
(bench/style_labels.py) and the audit can show what each rule saw.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from model_prep.curation.text import Converted

FIRST_PERSON = "first person"
COMMENTS = "refers to comments"
OTHER_POSTS = "refers to other answers or questions"
OTHER_USERS = "refers to other users"
OTHER_SITES = "refers to other sites or the site's workings"
THANKS = "thanks or sign-off"
EDIT_NOTE = "edit or update note"
CREDITS = "credits or sources"
REMOVED = "leans on a removed picture or link"

_SEEN_MEDIA = r"(?:picture|image|photo(?:graph)?|graph|diagram|figure|chart|screenshot|illustration|video|plot|map|" \
              r"infographic|gif|scale)"
_LINKED = r"(?:link|site|website|web ?page|page|article|blog(?: post)?|post|pdf|resource|source|video|wiki(?:pedia)? " \
          r"(?:article|page)|thread|forum)"


def _any(*patterns: str, flags: int = re.I) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), flags)


PATTERNS: dict[str, re.Pattern[str]] = {
    # "I" is matched case-sensitively (so is not "i.e."); the rest of the forms in either case.
    FIRST_PERSON: _any(r"\bI(?:['\u2019](?:m|ve|d|ll))?\b(?!\.e\.|/O\b)",
                       r"\b(?:[Mm]e|[Mm]y|[Mm]ine|[Mm]yself|IMO|IMHO)\b", flags=0),
    COMMENTS: _any(
        r"\b(?:in|under|into|from)\s+(?:a|the|my|your|his|her|their|these|those|other|previous|earlier|several)?"
        r"\s*comments?\b(?!\s+(?:on|out)\b)",
        r"\b(?:my|your|his|her|their|these|those|other|previous|earlier|several)\s+comments?\b",
        r"\b(?:leave|left|overflowed|wrote|posted|add|added) an?\s+comment\b",
        r"\bcomments?\s+(?:above|below|section|thread|welcomed?|are welcome)\b", r"\bcommenters?\b",
        r"\bcommented\b",
    ),
    OTHER_POSTS: _any(
        r"\bas (?:already |has been |was )?(?:mentioned|pointed out)\b",
        r"\bas (?:already |has been |was )?(?:said|noted|stated) (?:above|below|before|earlier|elsewhere|by)\b",
        r"\bas others (?:have )?(?:said|mentioned|noted|pointed out)\b",
        r"\bother (?:answers?|posters?)\b", r"\b(?:in|see|to) other (?:related )?questions\b",
        r"\bother (?:related )?questions (?:here|on)\b", r"\blet others answer\b",
        r"\b(?:previous|above|earlier|accepted|top|related|linked|duplicate|original|existing) (?:answers?|questions?"
        r"|posts?)\b",
        r"\banswers? (?:above|below|here)\b", r"\b(?:that|another|the other|my|his|her) (?:answer|post|thread)\b",
        r"\b(?:this|that|another|a similar|a related) question (?:on|about|here|asked|over)\b",
        r"\banswered (?:here|elsewhere|before|already)\b", r"\b(?:has|have|had) (?:already )?been (?:asked|"
        r"answered|discussed)\b",
        r"(?:@|\b)(?-i:[A-Z])\w*['\u2019]s answer\b", r"\bfollow[- ]up (?:to|on) the\b", r"\bthe OP\b",
        r"\bduplicate of\b",
        r"\bthe (?:asker|question'?s author)\b",
    ),
    OTHER_USERS: _any(
        r"(?<![\w.])@\w+", r"\b(?:user|poster|answerer|commenter)\s+@?(?-i:[A-Z])\w+",
        r"\b\w+ (?:points|pointed) out\b",
        r"\b(?:thanks|credit|kudos|h/t|hat tip) to @?(?-i:[A-Z])\w*", r"\bhigh-rep\b",
    ),
    OTHER_SITES: _any(
        r"\b\w+\.se\b", r"\b\w+\.stackexchange\.com\b", r"\bstack ?(?:exchange|overflow)\b",
        r"\b(?:super ?user|server ?fault|ask ?ubuntu|math ?overflow|seasoned advice)\b",
        r"\bover (?:on|at) (?:(?-i:[A-Z])\w*|the \w+ site)", r"\b(?:on|at|in|over on) (?:meta|chat)\b",
        r"\bmeta (?:question|post|site|discussion)\b", r"\bchat ?room\b", r"\bsub-?reddit\b", r"(?<!\w)/?r/\w+",
        r"\breddit\b", r"\bquora\b", r"\bon this site\b", r"\bthis site['\u2019]s\b",
        r"\b(?:the|this) [\w]+-[\w-]+ tag\b",
        r"(?-i:\b[A-Z]?[a-z]+ SE\b)", r"\b(?:up|down)-?vot(?:es?|ed|ing)\b",
        r"\b(?:extra )?rep(?:utation)? (?:points?|for this)\b",
    ),
    THANKS: _any(
        r"\b(?:thanks|thank you|thx|kudos)\b(?! to (?:the|its|their|a|an|this|that|these|those|it|his|her)\b)",
        r"\bhope (?:this|that|it) helps\b", r"\bhappy (?:brewing|experimenting|coding|hacking)\b",
    ),
    EDIT_NOTE: _any(
        r"^[#>*_ \t]*(?:edit(?:ed)?|update[d]?|addendum|p\.?s\.?|post ?script)\b[^\n]{0,30}?(?:[:\-\u2013\u2014]|\*\*)",
        r"[(\[]\s*(?:edit|update)\s*:", r"\b(?:edit|update)\s*:", r"\bedits? (?:on \w+ )?(?:are |is )?welcome\b",
        r"\bedited to\b", r"\bsee (?:my|the) edit\b",
        flags=re.I | re.M,
    ),
    CREDITS: _any(
        r"^[#>*_ \t-]*(?:sources?|sourced from|references?|credits?|image credits?|reference (?:&|and) image credits|"
        r"photo credits?|further reading|more information|more info|see also|related|bibliography|citations?|"
        r"footnotes?)\b[^\n]{0,60}$",
        r"\s[-\u2013\u2014]\s*source\s*$", r"^\[\d{1,2}\]\s",  # a footnote's own line
        flags=re.I | re.M,
    ),
    REMOVED: _any(
        rf"\b(?:the |this |that |these |those )?{_SEEN_MEDIA}s? (?:above|below|here|shows?|showing)\b",
        rf"\b(?:above|below|following|attached|linked) (?:{_SEEN_MEDIA}|{_LINKED})s?\b",
        rf"\b(?:this|that|these|those) (?:(?-i:[A-Z])\w* )?(?:{_SEEN_MEDIA}|{_LINKED})s?\b",
        r"\b(?:quote|quoted|quoting|excerpt) from\b", r"\b(?:good|useful|more|some|these|those) links\b",
        r"\bwatch the (?:whole |full )?(?:talk|video|clip)\b", r"\blink \[?\d",
        r"\b(?:from|in|according to|see|per|check out|read|watch) (?:this|that|the following|the linked|these) "
        r"(?:paper|review|study|recipe|list|guide|talk|post|one)s?\b",
        r"\bas (?:shown|seen|pictured|illustrated|depicted) (?:above|below|here|in the)\b",
        r"\b(?:click|see|look|check(?: it)? out|watch|found (?:it )?|read more|more (?:details|info(?:rmation)?|"
        r"discussion) (?:at|on|in)?) (?:here|there)\b",
        r"\bhere(?:['\u2019]s| is| are) (?:a|an|the|another|some) "
        r"(?:(?:youtube|good|great|nice|short|useful|interesting) )?"
        r"(?:link|video|site|website|article|recipe|review|guide|page|paper|list|blog)s?\b",
        r"\b(?:the|a) link\b", r"\bthe linked\b", r"\b(?:links?|sources?|references?) (?:above|below)\b",
        r"\b(?:can be )?found (?:below|above)\b", r"(?<=[\w.,;:)]) ?\[\d{1,2}\](?!\()",
        r"[^\n]:[ \t]*(?:\n\s*)*(?:-{3,}\s*)?\Z",  # a sentence that introduced something, then nothing
        flags=re.I | re.M,
    ),
}
RULES = tuple(PATTERNS)

# Rules whose matches may be cut out instead of dropping the answer, and how: a trailing section (from the
# matching paragraph to the end) of at most a third of the answer, or, for credits, the matching line alone.
CUT_TO_END = frozenset({EDIT_NOTE, CREDITS, THANKS})
MAX_CUT_SHARE = 1 / 3
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


@dataclass(frozen=True)
class Match:
    rule: str
    start: int
    end: int
    text: str
    context: str = field(default="", compare=False)  # a line around it, the match marked (see `highlight`)


@dataclass
class Review:
    """What the rules found in one answer, and the text after any rewrites."""

    text: str
    matches: list[Match] = field(default_factory=list)  # in the original text, every rule
    rewrites: list[Match] = field(default_factory=list)  # the matches whose section was cut
    failed: Match | None = None  # the first match no rewrite could remove: the answer is dropped

    @property
    def kept(self) -> bool:
        return self.failed is None


def blank_code(text: str) -> str:
    """The text with code replaced by spaces of the same length, so match offsets stay true."""
    return _CODE.sub(lambda m: re.sub(r"\S", " ", m.group()), text)


def find(text: str, pointing_links: Sequence[tuple[int, int]] = (), rules: tuple[str, ...] = RULES) -> list[Match]:
    """Every match of the given rules in the prose, in text order."""
    prose = blank_code(text)
    found = [Match(rule, m.start(), m.end(), text[m.start():m.end()])
             for rule in rules for m in PATTERNS[rule].finditer(prose)]
    if REMOVED in rules:
        found += [Match(REMOVED, start, end, text[start:end]) for start, end in pointing_links]
    return sorted(set(found), key=lambda m: (m.start, m.end, m.rule))


def paragraph_start(text: str, position: int) -> int:
    return text.rfind("\n\n", 0, position) + 2 if "\n\n" in text[:position] else 0


def line_bounds(text: str, position: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    return start, len(text) if end == -1 else end


def cut(text: str, match: Match) -> tuple[int, int] | None:
    """The span to remove so that the section `match` opens goes, or None when no small cut removes it."""
    if match.rule not in CUT_TO_END:
        return None
    start = paragraph_start(text, match.start)
    if start > 0 and len(text) - start <= len(text) * MAX_CUT_SHARE:
        return start, len(text)
    if match.rule == CREDITS:  # a credits line inside the answer: the line alone goes
        line_start, line_end = line_bounds(text, match.start)
        if match.start - line_start <= 4 or match.end >= line_end - 1:
            end = line_end
            while end < len(text) and text[end] == "\n":
                end += 1
            return line_start, end
    return None


def review(converted: Converted | str, rules: tuple[str, ...] = RULES) -> Review:
    """Apply the rules; cut what can be cut (then look again), and stop at the first match that cannot."""
    if isinstance(converted, str):
        converted = Converted(converted)
    text, pointing = converted.text, list(converted.pointing_links)
    result = Review(text, find(text, pointing, rules))
    while current := find(text, pointing, rules):
        first = current[0]
        span = cut(text, first)
        first = replace(first, context=highlight(text, first))
        if span is None:
            result.failed = first
            return result
        start, end = span
        result.rewrites.append(first)
        shorter = (text[:start] + text[end:]).rstrip()
        lead = len(shorter) - len(shorter.lstrip())
        shift = end - start + lead
        pointing = [(s, e) if e <= start else (s - shift, e - shift) for s, e in pointing if e <= start or s >= end]
        text = result.text = shorter.lstrip()
        pointing = [(s, e) for s, e in pointing if s >= 0 and e <= len(text)]
    return result


def highlight(text: str, match: Match, width: int = 70) -> str:
    """One line of context around the match, the match between »«, for reports and the audit."""
    start, end = max(0, match.start - width), min(len(text), match.end + width)
    before = " ".join(text[start:match.start].split())
    after = " ".join(text[match.end:end].split())
    return f"{'…' if start else ''}{before} »{' '.join(match.text.split())}« {after}{'…' if end < len(text) else ''}"


# What a person should look at in a kept answer: words that often, not always, mean the rule is broken.
BORDERLINE = re.compile(
    r"\b(?:above|below|earlier|link(?:ed|s)?|website|article|paper|study|comment(?:s|ed)?|answers?|edit(?:ed)?|"
    r"update[d]?|picture|image|graph|figure|diagram|video|shown|we|our|us|site|source[sd]?|credit|thanks?)\b",
    re.I,
)


def borderline(text: str) -> list[Match]:
    prose = blank_code(text)
    return [Match("borderline", m.start(), m.end(), text[m.start():m.end()]) for m in BORDERLINE.finditer(prose)]
