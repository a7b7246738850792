"""The paper's style rule for Stack Exchange answers, as named rules a person can audit.

LIMA kept answers that read as a helpful assistant's reply: not in the first person, and not leaning on what a
chat has no place for: the site's comments, other answers or questions, other users, other sites, thanks, edit
notes, credits, or a picture or link the clean-up removed. Each rule is a pattern over the answer's prose (code
is never matched), and one is code (`introduces_nothing`). Every pattern is linear in the text: no quantified
part can match the same stretch two ways, so no text makes one backtrack (tests/test_curation_linear.py times
each on adversarial text). Where a small cut keeps the answer clean (a trailing "Edit:" paragraph, a credits
line, a closing "Hope this helps") the cut is made and counted as a rewrite; anything else drops the answer.

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


# A rule anchored at a line start lets the line open with any whitespace but a line break ("[^\S\n]"): each
# look strips the text's ends after its cuts, and a line a rule met only once stripped would cost one more look
# per such line (quadratic), where matching it as it stands cuts them all in one.
PATTERNS: dict[str, re.Pattern[str]] = {
    # "I" is matched case-sensitively (so is not "i.e."); the rest of the forms in either case.
    FIRST_PERSON: _any(r"\bI(?:['\u2019](?:m|ve|d|ll))?\b(?!\.e\.|/O\b)",
                       r"\b(?:[Mm]e|[Mm]y|[Mm]ine|[Mm]yself|IMO|IMHO)\b", flags=0),
    COMMENTS: _any(
        r"\b(?:in|under|into|from)\s+(?:(?:a|the|my|your|his|her|their|these|those|other|previous|earlier|several)"
        r"\s*)?comments?\b(?!\s++(?:on|out)\b)",
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
        r"^(?:[#>*_]|[^\S\n])*(?:edit(?:ed)?|update[d]?|addendum|p\.?s\.?|post ?script)\b"
        r"[^\n]{0,30}?(?:[:\-\u2013\u2014]|\*\*)",
        r"[(\[]\s*(?:edit|update)\s*:", r"\b(?:edit|update)\s*:", r"\bedits? (?:on \w+ )?(?:are |is )?welcome\b",
        r"\bedited to\b", r"\bsee (?:my|the) edit\b",
        flags=re.I | re.M,
    ),
    CREDITS: _any(
        r"^(?:[#>*_-]|[^\S\n])*(?:sources?|sourced from|references?|credits?|image credits?|"
        r"reference (?:&|and) image credits|"
        r"photo credits?|further reading|more information|more info|see also|related|bibliography|citations?|"
        r"footnotes?)\b[^\n]{0,60}$",
        r"\s[-\u2013\u2014]\s*source\s*$", r"^[^\S\n]*\[\d{1,2}\]\s",  # a footnote's own line
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
        flags=re.I | re.M,
    ),
}
RULES = tuple(PATTERNS)

# Rules whose matches may be cut out instead of dropping the answer, and how: a trailing section (from the
# matching paragraph to the end) of at most a third of the answer, or, for credits, the matching line alone.
CUT_TO_END = frozenset({EDIT_NOTE, CREDITS, THANKS})
MAX_CUT_SHARE = 1 / 3
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
_BLANK_LINE = re.compile(r"\n(?=\n)")


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


def introduces_nothing(text: str) -> tuple[int, int] | None:
    """The span from a closing colon to the end when nothing follows it but whitespace and at most one '---' line:
    the sentence introduced a picture or link that was removed. Code after the colon is something (the whole
    text is read, not the prose). Written as code: as a pattern, the run of whitespace after the colon could be
    split in exponentially many ways, and one 40-line code block never finished (issue #26)."""
    end = len(text.rstrip())
    dashes = end - len(text[:end].rstrip("-"))
    end = end - dashes if dashes >= 3 else len(text)
    colon = len(text[:end].rstrip()) - 1
    if colon < 1 or text[colon] != ":" or text[colon - 1] == "\n":
        return None
    if text[colon + 1:end].lstrip(" \t")[:1] not in ("", "\n"):  # spaces, then nothing or a line break
        return None
    return colon - 1, len(text)


def find(text: str, pointing_links: Sequence[tuple[int, int]] = (), rules: tuple[str, ...] = RULES) -> list[Match]:
    """Every match of the given rules in the prose, in text order."""
    prose = blank_code(text)
    found = [Match(rule, m.start(), m.end(), text[m.start():m.end()])
             for rule in rules for m in PATTERNS[rule].finditer(prose)]
    if REMOVED in rules:
        spans = [*pointing_links, *filter(None, [introduces_nothing(text)])]
        found += [Match(REMOVED, start, end, text[start:end]) for start, end in spans]
    return sorted(set(found), key=lambda m: (m.start, m.end, m.rule))


def line_bounds(text: str, position: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    return start, len(text) if end == -1 else end


def line_cut(text: str, match: Match) -> tuple[int, int] | None:
    """A credits line inside the answer: the line and the blank lines after it, when the match opens or ends it."""
    if match.rule != CREDITS:
        return None
    line_start, line_end = line_bounds(text, match.start)
    if match.start - line_start > 4 and match.end < line_end - 1:
        return None
    end = line_end
    while end < len(text) and text[end] == "\n":
        end += 1
    return line_start, end


def cuts(text: str, matches: list[Match]) -> tuple[list[tuple[int, int]], list[Match], Match | None]:
    """The spans to cut for these matches (in text order), the matches they remove, and the first match nothing
    may remove (when it comes before any cut). Each match is judged as if the cuts before it were made: a
    trailing section (its paragraph to the end) may go when it is at most a third of the text that is left, a
    credits line alone otherwise. Paragraph starts and lengths are tracked as cuts are chosen, so one pass over
    the matches decides them all."""
    breaks = [m.start() + 2 for m in _BLANK_LINE.finditer(text)]  # where a paragraph starts after a blank line
    spans: list[tuple[int, int]] = []
    cut_before = [0]  # cut_before[k]: characters cut by spans[:k]
    paragraph, paragraph_shift = 0, 0  # the start of the current paragraph, and how much is cut before it
    next_break = covering = 0
    removed: list[Match] = []
    for match in matches:
        if spans and match.start < spans[-1][1]:
            continue  # on a line already cut
        while next_break < len(breaks) and breaks[next_break] <= match.start:
            start = breaks[next_break]
            next_break += 1
            while covering < len(spans) and spans[covering][1] <= start - 2:
                covering += 1
            if covering == len(spans) or spans[covering][0] > start - 1:  # its blank line was not cut
                paragraph, paragraph_shift = start, cut_before[covering]
        left = len(text) - cut_before[-1]
        section = paragraph - paragraph_shift
        if match.rule in CUT_TO_END and section > 0 and left - section <= left * MAX_CUT_SHARE:
            removed.append(replace(match, context=highlight(text, match)))
            return [span for span in spans if span[0] < paragraph] + [(paragraph, len(text))], removed, None
        if span := line_cut(text, match):
            spans.append(span)
            cut_before.append(cut_before[-1] + span[1] - span[0])
            removed.append(replace(match, context=highlight(text, match)))
        elif spans:
            break  # the next look, after these cuts, meets this match first and stops there
        else:
            return [], [], replace(match, context=highlight(text, match))
    return spans, removed, None


def review(converted: Converted | str, rules: tuple[str, ...] = RULES) -> Review:
    """Apply the rules; cut what can be cut (then look again), and stop at the first match that cannot.

    One look serves every cut it allows (see `cuts`); the next looks for what the cuts made (a sentence joined
    to another, a new end). An answer with a thousand credits lines costs two looks, not a thousand."""
    if isinstance(converted, str):
        converted = Converted(converted)
    text, pointing = converted.text, list(converted.pointing_links)
    result = Review(text, find(text, pointing, rules))
    current = result.matches
    while current:
        spans, removed, failed = cuts(text, current)
        if failed is not None:
            result.failed = failed
            return result
        result.rewrites += removed
        text, pointing = without(text, pointing, spans)
        result.text = text
        current = find(text, pointing, rules)
    return result


def without(text: str, pointing: list[tuple[int, int]], spans: list[tuple[int, int]]
            ) -> tuple[str, list[tuple[int, int]]]:
    """The text with the spans (in order, apart) cut and its ends stripped; the pointing links outside the spans,
    moved to match."""
    kept, moved, removed, position = [], [], 0, 0
    links = iter(sorted(pointing))
    link = next(links, None)
    for start, end in [*spans, (len(text), len(text))]:
        kept.append(text[position:start])
        while link is not None and link[0] < start:
            if link[0] >= position and link[1] <= start:
                moved.append((link[0] - removed, link[1] - removed))
            link = next(links, None)
        removed += end - start
        position = end
    joined = "".join(kept).rstrip()
    lead = len(joined) - len(joined.lstrip())
    return joined[lead:], [(s - lead, e - lead) for s, e in moved if s >= lead and e <= len(joined)]


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
