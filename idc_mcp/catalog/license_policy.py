"""The one license policy: what a license allows, decided from its own text, for every tool and sidecar.

check_licenses, the download result and the LICENSE_<collection>.txt files all ask `resolve_license`, so
one license value gets one verdict everywhere. Creative Commons licenses without NC allow commercial use
with attribution; NC licenses do not; anything else (e.g. the NLM terms) is "check the terms", never
guessed. The short name on the series governs; the metadata supplies the long name and URL, unless its
URL contradicts the name (the data has a 'CC BY-NC 3.0' source pointing at the CC BY page).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

CommercialUse = Literal["allowed", "not allowed", "check the terms"]


class LicenseTerms(BaseModel):
    commercial_use: CommercialUse = Field(description="derived from the license text; never guessed")
    attribution_required: bool | None = Field(description="null when the terms must be read")
    conditions: list[str] = Field(description="obligations and restrictions, in plain words")


def license_terms(
    short_name: str | None, long_name: str | None = None, url: str | None = None
) -> LicenseTerms:
    """What a license allows, from its name and URL. Unknown licenses are never assumed permissive."""
    text = " ".join(t for t in (short_name, long_name, url) if t).casefold()
    is_cc = bool(re.search(r"\bcc[ -]?by\b|creative ?commons|creativecommons\.org/licenses/", text))
    non_commercial = bool(re.search(r"\bby-nc\b|\bnc\b|non-?commercial", text))
    if re.search(r"\bcc0\b|publicdomain", text):
        return LicenseTerms(
            commercial_use="allowed", attribution_required=False, conditions=["public domain"]
        )
    if is_cc and non_commercial:
        return LicenseTerms(
            commercial_use="not allowed",
            attribution_required=True,
            conditions=["non-commercial use only", "attribution required (cite the data)"],
        )
    if is_cc:
        conditions = ["attribution required (cite the data)"]
        if re.search(r"\bby-sa\b|sharealike|share-alike", text):
            conditions.append("share adaptations under the same license")
        if re.search(r"\bby-nd\b|noderiv", text):
            conditions.append("no derivatives may be shared")
        return LicenseTerms(commercial_use="allowed", attribution_required=True, conditions=conditions)
    return LicenseTerms(
        commercial_use="check the terms",
        attribution_required=None,
        conditions=["not a Creative Commons license: read the terms at the license URL before any use"],
    )


def creative_commons_url(short_name: str) -> str | None:
    """'CC BY-NC 3.0' -> https://creativecommons.org/licenses/by-nc/3.0/ (None for other licenses)."""
    match = re.fullmatch(r"CC (BY(?:-(?:NC|SA|ND)){0,2}) (\d\.\d)", short_name.strip(), flags=re.IGNORECASE)
    if not match:
        return None
    return f"https://creativecommons.org/licenses/{match.group(1).lower()}/{match.group(2)}/"


def agrees(short_name: str | None, long_name: str | None, url: str | None) -> bool:
    """Whether a metadata entry's own terms (long name, URL) say what its short name says."""
    return license_terms(short_name).commercial_use == license_terms(None, long_name, url).commercial_use


@dataclass(frozen=True)
class License:
    """A license as every tool reports it: names, URL, what it allows, and a note when metadata disagreed."""

    short_name: str | None
    long_name: str | None
    url: str | None
    terms: LicenseTerms
    note: str | None = None

    def summary(self) -> str:
        """'commercial use: allowed; attribution required (cite the data)' — the sidecar and reply line."""
        return f"commercial use: {self.terms.commercial_use}; " + "; ".join(self.terms.conditions)


def resolve_license(short_name: str | None, long_name: str | None = None, url: str | None = None) -> License:
    """The license of series whose index says `short_name`, with the metadata's long name and URL."""
    terms = license_terms(short_name)
    if terms.commercial_use == "check the terms" and (long_name or url):
        terms = license_terms(short_name, long_name, url)
    note = None
    if url and not agrees(short_name or "", long_name, url):
        canonical = creative_commons_url(short_name or "")
        note = (
            f"The metadata gives {url} for {short_name!r}, which does not match the name; the name governs"
            + (f", and its own URL {canonical} is reported." if canonical else ".")
        )
        if canonical:
            long_name, url = None, canonical
    # No metadata entry: the Creative Commons license's own page.
    return License(short_name, long_name, url or creative_commons_url(short_name or ""), terms, note)
