"""Exact and near-duplicate removal within and across splits.

Duplicates are judged on the prompt (the first user turn): test rows have no answer, and two rows asking the
same thing are one example. Exact: the prompt lower-cased with punctuation and spacing removed. Near: MinHash
(datasketch) over word 3-shingles, Jaccard >= `threshold` by LSH. Splits are processed in priority order
(test, dev, train), so a training row that repeats a test prompt is the one removed.
"""

import hashlib
import re

from datasketch import MinHash, MinHashLSH

from model_prep.curation.records import Candidate

_WORD = re.compile(r"\w+")
PERMUTATIONS = 128


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def shingles(text: str, size: int = 3) -> set[bytes]:
    tokens = words(text)
    if len(tokens) <= size:
        return {" ".join(tokens).encode()}
    return {" ".join(tokens[i:i + size]).encode() for i in range(len(tokens) - size + 1)}


def signature(text: str) -> MinHash:
    minhash = MinHash(num_perm=PERMUTATIONS, seed=1)
    minhash.update_batch(sorted(shingles(text)))
    return minhash


class Deduplicator:
    """Feed splits in priority order; `keep` says whether a row is new, and remembers it if it is."""

    def __init__(self, threshold: float = 0.8) -> None:
        self.exact: set[str] = set()
        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=threshold, num_perm=PERMUTATIONS)
        self.signatures: list[MinHash] = []

    def keep(self, candidate: Candidate) -> str | None:
        """None when the row is kept, else why it was dropped ('exact duplicate' / 'near duplicate')."""
        prompt = candidate.conversations[0]
        key = hashlib.sha256(" ".join(words(prompt)).encode()).hexdigest()
        if key in self.exact:
            return "exact duplicate"
        minhash = signature(prompt)
        # LSH proposes candidates; the estimated Jaccard similarity decides.
        if any(self.signatures[int(i)].jaccard(minhash) >= self.threshold for i in self.lsh.query(minhash)):
            return "near duplicate"
        self.exact.add(key)
        self.lsh.insert(str(len(self.signatures)), minhash)
        self.signatures.append(minhash)
        return None
