"""Values related by their words, in either direction and in any case: 'GE' and 'GE MEDICAL SYSTEMS',
'Siemens Healthineers' and 'SIEMENS', 'hematoxylin' and 'hematoxylin stain'.

Words are runs of letters and digits, case-folded (separators and punctuation ignored). Two values are
related when the words of one appear, in order, in the other, or when they begin with the same word and
that word is on its own a value of the column (a name followed by different suffixes: 'GE Healthcare'
and 'GE MEDICAL SYSTEMS' where 'GE' occurs; not 'CC BY-NC 4.0' and 'CC BY 4.0', as 'CC' does not).
Computed from the values only, never from a synonym list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MIN_WORD = 2  # a shared first word shorter than this ('a', '1') relates nothing


def words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.casefold())


def contains_words(value: list[str], part: list[str]) -> bool:
    """`part`'s words appear in order, as whole words, in `value` ('GE' in 'GE HEALTHCARE', not in
    'GEMS' nor 'Gevaert')."""
    n = len(part)
    return n > 0 and any(value[i : i + n] == part for i in range(len(value) - n + 1))


def bare_names(values: Iterable[object]) -> set[str]:
    """The one-word values of a column, folded: the names a longer value may start with."""
    return {w[0] for v in values if isinstance(v, str) and len(w := words(v)) == 1}


def related(a: str, b: str, names: set[str]) -> bool:
    """a and b differ but one's words sit inside the other's, or both start with a word of `names`."""
    wa, wb = words(a), words(b)
    if not wa or not wb or a == b:
        return False
    if contains_words(wa, wb) or contains_words(wb, wa):
        return True
    return wa[0] == wb[0] and wa[0] in names and len(wa[0]) >= MIN_WORD


def sharing_words(word: str, counts: Mapping[object, int], limit: int = 4) -> list[tuple[object, int]]:
    """Text values that share at least one word with `word`, most shared words first, then most rows."""
    order = {w: i for i, w in reversed(list(enumerate(words(word))))}
    mine = {w for w in order if len(w) >= MIN_WORD}
    if not mine:
        return []
    scored = []
    for value, n in counts.items():
        if isinstance(value, str) and value != word:
            shared = mine & set(words(value))
            if shared:  # more shared words first, then an earlier word of `word` (the name), then rows
                scored.append((-len(shared), min(order[w] for w in shared), -n, str(value), value))
    scored.sort(key=lambda t: t[:4])
    return [(t[4], -t[2]) for t in scored[:limit]]
