"""Stops an answer that has started to loop: the same sentence written `limit` times.

Small models loop under sampling that suits them otherwise ("Paris, la femme au martyre." forty times): a chat
page would stream that until max_tokens. The guard reads the answer as it streams, one completed sentence at a
time, in time linear in the text; bench/decoding.py counts loops with the same sentences.
"""

import re
import sys
from collections import Counter

# A sentence ends at ., ! or ? followed by white space, or at a line break ("1.5 ounces" is not an end).
SENTENCE_END = re.compile(r"(?<=[.!?])[ \t]+|\n[ \t\n]*")
# A list marker in front of a sentence ("1.", "2)", "-", "*"): numbered repeats of one line are one loop.
LIST_MARKER = re.compile(r"[-*•]\s*|\d{1,3}[.)]\s*")
WORD = re.compile(r"\w+")
# Shorter sentences ("Yes.", "Step 1.") repeat in answers that are fine.
MIN_WORDS = 3


def sentence_key(sentence: str) -> str | None:
    """What makes two sentences the same loop: their words, in lower case, without a list marker; None for a
    sentence too short to count."""
    marker = LIST_MARKER.match(sentence)
    words = WORD.findall(sentence[marker.end():] if marker else sentence)
    return " ".join(words).lower() if len(words) >= MIN_WORDS else None


class LoopGuard:
    """Fed an answer's text piece by piece; `feed` is True once some sentence has occurred `limit` times."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending = ""  # the sentence being written
        self.counts: Counter[str] = Counter()

    def feed(self, text: str) -> bool:
        # Only the new text (and the character before it, which may be the end's punctuation) is searched.
        searched_from = max(len(self.pending) - 1, 0)
        self.pending += text
        start = 0
        for end in SENTENCE_END.finditer(self.pending, searched_from):
            key = sentence_key(self.pending[start:end.start()])
            start = end.end()
            if key is not None:
                self.counts[key] += 1
                if self.counts[key] >= self.limit:
                    self.pending = self.pending[start:]
                    return True
        self.pending = self.pending[start:]
        return False


def most_repeated(text: str) -> int:
    """How many times the most repeated sentence of `text` occurs, its last one included (0 when it has none
    that counts): the guard's own count, never stopped."""
    guard = LoopGuard(sys.maxsize)
    guard.feed(text + "\n")
    return max(guard.counts.values(), default=0)
