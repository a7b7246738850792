"""Talk about the post in a dialogue's turns: what makes a comment chain read as a forum, not a chat.

A comment under an answer is written by someone who can edit that answer, accept it, vote, or ask a new
question; a chat has none of that. Real replies say so ("I've updated my answer", "see my edit", "for the
purposes of this answer", "mark it as the solution", "maybe ask this as its own question?"), and unedited they
teach the model to speak as a forum poster. The paper's authors edited their 20 Stack Exchange dialogues by hand;
this rule does the part a pattern can: it cuts the sentence that says it, or only its clause when the rest of
the sentence still carries the reply ("So use slot 4924800, I have edited my answer to mention this.").

First person stays: "I think the fee is fixed" is a natural reply. Only sentences about editing, updating or
accepting the post, the answer's or question's own text, or the site count. Follow-up questions get the edit and
site patterns (the question's edits and the answer's acceptance are things the chat never shows), not the
own-text ones: a user saying "in your answer you said..." is how people refer to a chat's earlier turn.

Every pattern is linear by construction: alternations of words with bounded repeats ({1,40} at most), no
quantified group that can match the same text two ways; sentences and clauses are split by plain code. Words are
matched one space apart: a comment's whitespace is collapsed before it gets here (dialogues.comment_text).
"""

import bisect
import re
from dataclasses import dataclass, field

from model_prep.curation.style import Match, blank_code, highlight
from model_prep.curation.text import Converted

META_TALK = "talks about the post, the edit or the site"
MIN_WORDS = 3  # a reply left with fewer words than this after a cut says nothing: the exchange goes

_ADJ = r"(?: (?:original|updated|edited|initial|first|own|above|previous|revised))?"
# "the POST request", "the question mark", "post-install": not the post
_NOT_COMPOUND = r"(?![-\w])(?! (?:request|method|body|header|data|endpoint|call|type|mark|field|id|hook)s?\b)"
_POST = rf"(?:(?:my|the|this|your|his|her|our){_ADJ} (?:answer|post|question)s?{_NOT_COMPOUND}|my{_ADJ} response\b)"
_EDIT = (r"(?:edit(?:s|ed|ing)?|updat(?:e|es|ed|ing)|amend(?:s|ed|ing)?|revis(?:e|es|ed|ing)|includ(?:e|es|ed|ing)|"
         r"expand(?:s|ed|ing)?|extend(?:s|ed|ing)?|incorporat(?:e|es|ed|ing)|rewr(?:ite|ites|ote|itten|iting))")
_PUT = rf"(?:{_EDIT}|add(?:s|ed|ing)?|mov(?:e|es|ed|ing)|append(?:s|ed|ing)?|insert(?:s|ed|ing)?)"  # to/in the post
_EDIT_NOUN_AFTER = r"(?![-\w])(?! (?:distance|mode|button|menu|field|box|script|command|history|page|tab|form)s?\b)"

EDITS = (  # editing or updating the post, the answer or the question
    rf"\b{_EDIT} {_POST}", rf"\b{_PUT}(?: [^.?!,;]{{1,40}})? (?:to|in|into|within|on) {_POST}",
    r"\b(?:the|my|this) (?:answer|post|question) (?:(?:now|has|have|was|is|been|just) ){0,2}"
    r"(?:edited|updated|amended|revised|expanded|extended|rewritten|changed)\b",
    r"\b(?:the|my|this) (?:answer|post) now (?:includes|has|mentions|covers|contains|shows|explains|says|lists)\b",
    rf"\b(?:updated|edited|revised|amended|expanded|extended|improved) (?:answer|post){_NOT_COMPOUND}",
    r"\b(?:see|saw|check|made|make|making|my|the|an|some|few|latest|recent|this|that|in|after|with|per|your|last) "
    rf"(?:(?:latest|recent|last|new|small|minor|few|some) )?edits?{_EDIT_NOUN_AFTER}",
    r"\b(?:edit|edited|update|updated|amend|amended|revise|revised)(?: (?:it|this|that))? accordingly\b",
    r"\bI(?:['\u2019]ve| have)? (?:completed|expanded|extended|improved|clarified|reworded|rephrased|rewrote|"
    r"rewritten|fleshed out|elaborated on) (?:the|my|this) (?:explanation|answer|post|text|wording|description)\b",
    r"\bI(?:['\u2019]ve| have)?(?: tried to)? (?:elaborat|expand|clarif)(?:e|ed|y|ied)?(?: (?:on )?(?:it|this|that))? "
    r"(?:a (?:little |bit |little bit )?more|further|some more)\b",  # "I tried to elaborate it a little bit more"
    r"\b(?:check|look|see)(?: (?:it|again|the answer|the post|my answer))? now\?",  # at the edited post
)
SITE = (  # the site's workings: accepting, voting, asking elsewhere, waiting for other people to answer
    r"\baccept(?:s|ed|ing)? (?:(?:it|this|that|your|my|the|an?|one|reply|response) ){0,2}(?:as (?:the |an? )?)?"
    r"(?:answer|solution)\b",
    r"\bI(?:['\u2019]ll| will| would|['\u2019]d| can| could)(?: then)? accept (?:it|this|that)\b",
    r"\baccepted answer\b",
    r"\bmark(?:s|ed|ing)? (?:(?:it|this|that|the|my|your|one|answer|response|reply) ){0,2}as (?:the |an? )?"
    r"(?:answer|solution|accepted|correct)\b",
    r"\b(?:up|down)-?vot(?:e|es|ed|ing)\b",
    r"\b(?:ask|post|open|create|start|raise|submit)(?:s|ed|ing)? (?:(?:it|this|that|a|an|as|in) ){0,3}"
    r"(?:new|separate|different|another|its own|their own|your own) (?:question|thread|post)\b",
    r"\b(?:someone|somebody|anyone|others|other people)(?: else)?(?: [\w'\u2019-]{1,20}){0,3} "
    r"(?:(?:will|can|could|may|might|would) )?(?:answer|reply|respond|chime in|weigh in)\b",
    r"\bstack ?(?:exchange|overflow)\b", r"\bthis (?:site|forum|thread)\b", r"\bfuture (?:readers|visitors)\b",
)
OWN_TEXT = (  # the answer's own text, as a post ("this answer", "in the answer", "the scope of this question")
    rf"\bthis{_ADJ} (?:answer|post)s?{_NOT_COMPOUND}",
    rf"\bmy{_ADJ} (?:answer|post)s?{_NOT_COMPOUND}(?! (?:is|would be|will be|remains|to your)\b)",
    rf"\b(?:in|into|from|within|throughout|under) (?:the|that){_ADJ} (?:answer|post){_NOT_COMPOUND}",
    r"\b(?:scope|purposes?|aim|body|title|length) of (?:the|this|my|your|that) (?:answer|post|question)\b",
    r"\b(?:point|focus|rest|top|bottom|beginning|end) of (?:the|this|my) (?:answer|post)\b",
    r"\bthe answers? (?:above|below)\b",
)


def _any(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.I)


REPLY = _any(EDITS + SITE + OWN_TEXT)
FOLLOW_UP = _any(EDITS + SITE)

_TERMINAL = re.compile(r"[.?!][\"'\u201d\u2019)\]]?(?=\s|\Z)")  # no repeated group: one mark, one closer
_CLAUSE_BREAK = re.compile(r"(?:[,;]| [-\u2013\u2014]) (?:but )?| but ")
_CONDITION = re.compile(r"(?:if|when|whenever|unless|once|in case)\b", re.I)


@dataclass(frozen=True)
class Cut:
    removed: str  # the sentence or clause taken out, as written
    example: str  # the turn around it, the matched words between »« (for the report)


@dataclass
class Trimmed:
    text: Converted
    cuts: list[Cut] = field(default_factory=list)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, its final mark included and the whitespace around it not: a sentence ends at
    ".", "?" or "!" (and a closing quote or bracket) before whitespace or the end."""
    spans, start = [], 0
    for mark in _TERMINAL.finditer(text):
        spans.append((start, mark.end()))
        start = mark.end()
    spans.append((start, len(text)))
    trimmed = []
    for start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            trimmed.append((start, end))
    return trimmed


def clause_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The sentence's clauses: split at ", ", "; ", " - " and " but " (a "but" goes with the separator before it),
    each span without its separator."""
    clauses, position = [], start
    for separator in _CLAUSE_BREAK.finditer(text, start, end):
        clauses.append((position, separator.start()))
        position = separator.end()
    clauses.append((position, end))
    return clauses


@dataclass(frozen=True)
class _Span:
    start: int  # what goes: the clause and a separator next to it, or the sentence
    end: int
    shown: str  # the clause or sentence alone
    match: Match  # the first match in it


def _sentence_cut(text: str, prose: str, start: int, end: int, pattern: re.Pattern[str]
                  ) -> tuple[list[_Span], int | None]:
    """What to remove from one sentence: the clauses that match where the rest still stands, else the whole
    sentence; and where a letter must become a capital (the start of what follows a cut first clause)."""
    matches = [Match(META_TALK, m.start(), m.end(), text[m.start():m.end()])
               for m in pattern.finditer(prose, start, end)]
    if not matches:
        return [], None
    body_end = end
    while body_end > start and prose[body_end - 1] in ".?!\"')]\u201d\u2019":
        body_end -= 1
    clauses = clause_spans(prose, start, body_end)
    first_match: list[Match | None] = [None] * len(clauses)
    ends = [c_end for _, c_end in clauses]
    for match in reversed(matches):  # each clause it overlaps (a match is short: a few clauses at most)
        index = bisect.bisect_right(ends, match.start)
        while index < len(clauses) and clauses[index][0] < match.end:
            first_match[index] = match
            index += 1
    kept = [clause for clause, found in zip(clauses, first_match, strict=True) if found is None]
    whole = [_Span(start, end, text[start:end], matches[0])]
    if not kept or matches[-1].end > body_end or (first_match[-1] and _CONDITION.match(prose, kept[0][0])):
        return whole, None
    spans, index = [], 0
    while index < len(clauses):
        found = first_match[index]
        if found is None:
            index += 1
            continue
        last = index  # a run of matching clauses goes with the separator before it; a first run, the one after
        while last + 1 < len(clauses) and first_match[last + 1] is not None:
            last += 1
        c_start, c_end = clauses[index][0], clauses[last][1]
        cut = (clauses[index - 1][1], c_end) if index else (c_start, clauses[last + 1][0])
        spans.append(_Span(*cut, text[c_start:c_end], found))
        index = last + 1
    return spans, (kept[0][0] if first_match[0] else None)


def trim(converted: Converted, pattern: re.Pattern[str] = REPLY) -> Trimmed:
    """The turn without its meta-talk, pointing links moved with their text, and what was cut."""
    text = converted.text
    prose = blank_code(text)  # code is never matched, and its dots do not end sentences
    removed: list[tuple[int, int]] = []
    capitals: set[int] = set()
    cuts = []
    for start, end in sentence_spans(prose):
        spans, capital = _sentence_cut(text, prose, start, end, pattern)
        if capital is not None:
            capitals.add(capital)
        for span in spans:
            cuts.append(Cut(" ".join(span.shown.split()), highlight(text, span.match)))
            cut_end = span.end
            if (span.start, span.end) == (start, end):  # a whole sentence takes the space after it along
                while cut_end < len(text) and text[cut_end].isspace():
                    cut_end += 1
            removed.append((span.start, cut_end))
    if not removed:
        return Trimmed(converted)
    kept, position = [], 0
    for start, end in removed:  # in text order, not overlapping
        kept.append((position, start))
        position = end
    kept.append((position, len(text)))
    return Trimmed(_rebuilt(text, converted.pointing_links, kept, capitals), cuts)


def _rebuilt(text: str, links: list[tuple[int, int]], kept: list[tuple[int, int]], capitals: set[int]
             ) -> Converted:
    """The kept pieces joined, a cut first clause's successor capitalised, links inside the pieces moved along."""
    parts, offsets, length = [], [], 0
    for start, end in kept:
        piece = text[start:end]
        parts.append(piece[:1].upper() + piece[1:] if start in capitals else piece)
        offsets.append(length - start)
        length += len(piece)
    joined = "".join(parts)
    lead = len(joined) - len(joined.lstrip())
    stripped = joined.strip()
    starts = [start for start, _ in kept]
    moved = []
    for link_start, link_end in links:
        index = bisect.bisect_right(starts, link_start) - 1
        if index >= 0 and link_end <= kept[index][1]:
            shift = offsets[index] - lead
            if link_start + shift >= 0 and link_end + shift <= len(stripped):
                moved.append((link_start + shift, link_end + shift))
    return Converted(stripped, moved)


def meaningful(text: str) -> bool:
    """Whether what a cut left can stand as a reply: a few words, not a greeting's remains."""
    return sum(any(c.isalpha() for c in word) for word in text.split()) >= MIN_WORDS
