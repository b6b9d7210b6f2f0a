"""APA author lists (as DataCite writes them in the bundled citations) -> CSL-JSON names.

The shapes found in the 334 bundled citations, all handled here:
- `Family, G. N., Family, G., & Family, G.`: family then initials, the last after `&`;
- full or lowercase given names (`Armato III, Samuel G.`, `Ileva, lilia`, `jaffe, conrade carl`),
  hyphenated initials (`Chi, P.-C.`, `Feng, S.-ting`), suffixes (`Small Jr., W.`, `Holmes III, D. R.`),
  particles (`van Ginneken, B.`, `de Boer, S.`, `Van Oss, J.`, `Jimenez del Toro, O. A.`);
- `Family I.` without a comma (`Válek V., Rohan T.`), semicolon lists (`Armato III, Samuel G.; Hadjiiski,
  Lubomir`), given-first lists (`Deepa Krishnaswamy, ..., & Andrey Fedorov.`);
- organisations, alone or among people (`GTEx Consortium`, `The Research for ... Program and the Applied
  ... (APOLLO) Research Network.`): one literal author each, never split (not at "and" either);
- a name left without its pair (`Yanling` before `Smith, K.`) stays one literal author;
- APA's ellipsis (`A, B., … Z, Y.`): the authors between are not listed; `elided` is set.

Single names in given-first order are split by `nameparser`; its particle list decides which lowercase
words lead a family name ("van", "de", "von", ...), kept as CSL's `non-dropping-particle`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any


# nameparser loads when a name is first parsed, not at server start.
@cache
def _human_name() -> Any:
    from nameparser import HumanName

    return HumanName


@cache
def _particles() -> Any:
    """nameparser's particles ("van", "de", "von", ...): its `CONSTANTS.prefixes`."""
    from nameparser.config import CONSTANTS

    return CONSTANTS.prefixes


# A token that is a given name by its form: it starts with an initial ("G.", "Ch.", "P.-C.", "S.-ting").
_STARTS_WITH_INITIAL = re.compile(r"^[^\W\d_]{1,2}\.")
# "Válek V." / "Rohan T. K.": a family name followed by initials, without the comma.
_FAMILY_INITIALS = re.compile(
    r"^(?P<family>[^\W\d_][\w'’.-]*(?: [\w'’-]+)*?) (?P<given>(?:[^\W\d_]{1,2}\.\s*)+)$"
)
_ELLIPSIS = re.compile(r"\s*(?:…|\.\.\.)\s*")
_GENERATIONAL = {"jr", "jnr", "sr", "snr", "ii", "iii", "iv"}
# Words that make a name an organisation (one literal author), besides its length.
_ORGANISATION = re.compile(
    r"\b(?:consortium|group|team|network|program|programme|biobank|institute|center|centre|"
    r"university|hospital|initiative|foundation|society|association|archive|project|research|"
    r"committee|alliance|collaborat\w*|the)\b",
    re.IGNORECASE,
)


@dataclass
class AuthorList:
    names: list[dict[str, str]] = field(default_factory=list)
    elided: bool = False  # APA's "…": the list omits authors (BibTeX: "and others")
    given_first: bool = False  # the source wrote "Given Family" rather than "Family, Given"


def parse_authors(text: str | None) -> AuthorList:
    """Split an APA author list into CSL names: {family, given[, suffix][, non-dropping-particle]} for
    people, {literal} for organisations and names that cannot be split."""
    if not text or not text.strip(" .,&"):
        return AuthorList()
    text = re.sub(r"\s+", " ", text).strip()
    elided = bool(_ELLIPSIS.search(text))
    text = _ELLIPSIS.sub(", ", text).strip(" ,")
    if ";" in text:  # "Family, Given; Family, Given": each part is one person
        parts = [p.strip(" &") for p in text.split(";") if p.strip(" &.")]
        return AuthorList([_person_or_literal(*_split_once(p)) for p in parts], elided)
    tokens = [t.strip() for t in re.split(r",(?:\s*&)?\s*", text) if t.strip(" .")]
    tokens = [t.removeprefix("& ").strip() for t in tokens]
    tokens[-1] = tokens[-1].rstrip(".") if not _ends_with_initial(tokens[-1]) else tokens[-1]
    if (
        len(tokens) > 1
        and not any(_STARTS_WITH_INITIAL.match(t) for t in tokens)
        and _all_given_first(tokens)
    ):
        return AuthorList([_given_first(t) for t in tokens], elided, given_first=True)
    names: list[dict[str, str]] = []
    i = 0
    while i < len(tokens):
        token, nxt = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else None
        after = tokens[i + 2] if i + 2 < len(tokens) else None
        if nxt is not None and _pairs_with(token, nxt, after):
            names.append(_person_or_literal(token, nxt))
            i += 2
        else:
            names.append(_alone(token))
            i += 1
    return AuthorList(names, elided)


def _ends_with_initial(token: str) -> bool:
    return bool(re.search(r"(?:^|[\s.-])[^\W\d_]{1,2}\.$", token))


def _split_once(part: str) -> tuple[str, str | None]:
    family, _, given = part.partition(",")
    return family.strip(), (given.strip() or None)


def _family_initials(token: str) -> re.Match[str] | None:
    """'Válek V.' -> family and initials; not 'Small Jr.' (a suffix is not an initial)."""
    match = _FAMILY_INITIALS.match(token)
    if match and match.group("given").strip().rstrip(".").lower() in _GENERATIONAL:
        return None
    return match


def _pairs_with(token: str, nxt: str, after: str | None) -> bool:
    """Whether `nxt` is the given name of the family name `token`."""
    if _looks_organisation(token) or _family_initials(token):
        return False
    if _STARTS_WITH_INITIAL.match(nxt):
        return True
    # A full given name ("Samuel G.", "lilia", "conrade carl"): a few plain words, and not itself a
    # family name whose initials come next ("Yanling, Smith, K." pairs Smith with K.).
    words = nxt.split()
    plain = 1 <= len(words) <= 3 and all(re.fullmatch(r"[^\W\d_][\w'’-]*\.?", w) for w in words)
    return plain and not _looks_organisation(nxt) and not (after and _STARTS_WITH_INITIAL.match(after))


def _looks_organisation(text: str) -> bool:
    return len(text.split()) >= 4 or bool(_ORGANISATION.search(text)) or "(" in text


def _alone(token: str) -> dict[str, str]:
    """A token without a given name after it: 'Válek V.' is a person, anything else one literal author."""
    match = _family_initials(token)
    if match and not _looks_organisation(match.group("family")):
        return _person(match.group("family"), match.group("given").strip())
    return {"literal": token.rstrip(".") if not _ends_with_initial(token) else token}


def _person_or_literal(family: str, given: str | None) -> dict[str, str]:
    if not given:
        return _alone(family)
    return _person(family, given)


def _person(family: str, given: str) -> dict[str, str]:
    """CSL name from the family part (which may carry a suffix or lead with a particle) and the given."""
    name: dict[str, str] = {}
    words = family.split()
    if len(words) > 1 and words[-1].rstrip(".").lower() in _GENERATIONAL:
        name["suffix"] = words.pop()
    prefixes = _particles()
    if len(words) > 1 and words[0].islower() and words[0].lower() in prefixes:
        particle = [words.pop(0)]
        while len(words) > 1 and words[0].islower() and words[0] in prefixes:
            particle.append(words.pop(0))
        name["non-dropping-particle"] = " ".join(particle)
    name["family"] = " ".join(words)
    name["given"] = given
    return dict(sorted(name.items()))


def _all_given_first(tokens: list[str]) -> bool:
    """'Deepa Krishnaswamy, Dennis Bontempi, ...': every token a capitalised personal name of 2-3 words."""
    return all(
        2 <= len(t.split()) <= 3 and not _looks_organisation(t) and all(w[:1].isupper() for w in t.split())
        for t in tokens
    )


def _given_first(token: str) -> dict[str, str]:
    parsed = _human_name()(token)
    given = " ".join(p for p in (parsed.title, parsed.first, parsed.middle) if p)
    family = " ".join(p for p in (parsed.last, parsed.suffix) if p)
    if not given or not parsed.last:
        return {"literal": token}
    return _person(family, given)


def full_family(name: dict[str, str]) -> str:
    """The family name as written, particle included ('van Ginneken'); '' for a literal author."""
    if "family" not in name:
        return ""
    return " ".join(p for p in (name.get("non-dropping-particle"), name["family"]) if p)


def apa_form(name: dict[str, str], given_first: bool = False) -> str:
    """The name as the APA source wrote it ('Armato III, Samuel G.'), for checks and display."""
    if "literal" in name:
        return name["literal"]
    family = " ".join(p for p in (full_family(name), name.get("suffix")) if p)
    return f"{name['given']} {family}" if given_first else f"{family}, {name['given']}"
