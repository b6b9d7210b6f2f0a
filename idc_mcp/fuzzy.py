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
    """The candidates nearest to `word`: exact folded matches first, then fuzzy ones above `cutoff`."""
    pool = list(dict.fromkeys(c for c in candidates if c))
    if not pool or not word:
        return []
    target = fold(word)
    exact = [c for c in pool if fold(c) == target]
    prefix = [
        c for c in pool if target and fold(c) and (fold(c).startswith(target) or target.startswith(fold(c)))
    ]
    contained = [c for c in pool if target and (target in fold(c) or (fold(c) and fold(c) in target))]
    scored = process.extract(
        word, pool, scorer=fuzz.WRatio, processor=utils.default_process, limit=limit * 2, score_cutoff=cutoff
    )
    by_length = sorted(prefix, key=lambda c: abs(len(fold(c)) - len(target)))
    ordered = (
        exact + by_length + sorted(contained, key=lambda c: abs(len(c) - len(word))) + [m[0] for m in scored]
    )
    return list(dict.fromkeys(ordered))[:limit]
