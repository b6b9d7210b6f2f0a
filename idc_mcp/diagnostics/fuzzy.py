"""Nearest-name suggestions, computed from the data (never from a hand-written synonym list)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from rapidfuzz import fuzz, process, utils

_FOLD = re.compile(r"[\s_\-.,;:/\\()'\"]+")


def fold(text: str) -> str:
    """Case-, space- and punctuation-insensitive form: 'TCGA-LUAD' and 'tcga_luad' fold alike."""
    return _FOLD.sub("", text.casefold())


def closest(word: str, candidates: Iterable[str], limit: int = 5, cutoff: float = 60.0) -> list[str]:
    """The candidates nearest to `word`: folded-equal first, then one a prefix of the other, one inside
    the other, then fuzzy matches above `cutoff`."""
    pool = list(dict.fromkeys(c for c in candidates if c))
    if not pool or not word:
        return []
    target = fold(word)
    exact = [c for c in pool if fold(c) == target]
    prefix = [
        c for c in pool if target and fold(c) and (fold(c).startswith(target) or target.startswith(fold(c)))
    ]
    contained = [c for c in pool if _contains(target, fold(c))]
    shortened = [c for c in pool if _shortens(target, fold(c))]
    scored = process.extract(
        word, pool, scorer=fuzz.WRatio, processor=utils.default_process, limit=limit * 2, score_cutoff=cutoff
    )
    by_length = sorted(prefix, key=lambda c: abs(len(fold(c)) - len(target)))
    ordered = (
        exact
        + by_length
        + sorted(contained, key=lambda c: abs(len(c) - len(word)))
        + shortened
        + [m[0] for m in scored]
    )
    return list(dict.fromkeys(ordered))[:limit]


def _contains(a: str, b: str) -> bool:
    """One folded name inside the other, the inner one at least 3 characters and a third of the outer
    ('x' is in everything, '123' in every UID)."""
    short, long = sorted((a, b), key=len)
    return len(short) >= 3 and 3 * len(short) >= len(long) and short in long


def _shortens(a: str, b: str) -> bool:
    """Folded `a` is `b` with letters left out, keeping its first and last three ('SeriesUID' for
    'SeriesInstanceUID'), at least 5 letters and half of `b`."""
    if len(a) < 5 or len(a) >= len(b) or 2 * len(a) < len(b) or a[:3] != b[:3] or a[-3:] != b[-3:]:
        return False
    letters = iter(b)
    return all(ch in letters for ch in a)  # an in-order subsequence


def resembles(word: str, candidate: str, min_ratio: float = 70.0) -> bool:
    """Whether `candidate` is plausibly what `word` meant: equal or a prefix when folded, one inside the
    other, or a close spelling. Stricter than `closest`'s ranking, for 'use X instead' advice."""
    a, b = fold(word), fold(candidate)
    if not a or not b:
        return False
    # A stored value may abbreviate the word ('M' for 'Male'); the word abbreviating a much longer
    # value ('x' for 'XRayTubeCurrent') is too weak a hint.
    abbreviates = b.startswith(a) and (len(a) >= 3 or 3 * len(a) >= len(b))
    return (
        a.startswith(b) or abbreviates or _contains(a, b) or _shortens(a, b) or fuzz.ratio(a, b) >= min_ratio
    )
