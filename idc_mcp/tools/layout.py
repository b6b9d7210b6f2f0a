"""Where each series lands: the folder template of `download` and of `export_manifest`'s s5cmd lines.

The template uses idc-index's placeholders (`%collection_id`, `%PatientID`, `%StudyInstanceUID`,
`%Modality`, `%SeriesInstanceUID`) joined by `_`, `-` and `/`. Every substituted value is sanitized by
`files.safe_component`, so metadata can never add a path separator, `..` or a control character.
"""

from __future__ import annotations

import re

from idc_mcp.diagnostics.fuzzy import closest
from idc_mcp.errors import AssistantError
from idc_mcp.files import MAX_NAME_BYTES, safe_component, shown

DEFAULT_TEMPLATE = "%collection_id/%PatientID/%StudyInstanceUID/%Modality_%SeriesInstanceUID"
PLACEHOLDERS = ("collection_id", "PatientID", "StudyInstanceUID", "Modality", "SeriesInstanceUID")
SEPARATORS = ("_", "-", "/")
MAX_TEMPLATE_CHARS = 200
MAX_TEMPLATE_LEVELS = 8  # folders below the download folder
# Longest names first so that a placeholder that prefixes another is never matched short.
_PLACEHOLDER = re.compile("%(" + "|".join(sorted(PLACEHOLDERS, key=len, reverse=True)) + ")")


class TemplateError(AssistantError, ValueError):
    """The folder template uses something other than the known placeholders and separators."""


def check_template(template: str) -> str:
    """The template, if it holds only known placeholders and separators, at most MAX_TEMPLATE_CHARS
    characters and MAX_TEMPLATE_LEVELS folders deep; otherwise a TemplateError."""
    if len(template) > MAX_TEMPLATE_CHARS or template.count("/") >= MAX_TEMPLATE_LEVELS:
        raise TemplateError(
            f"dir_template {shown(template)} is too long or too deep: at most {MAX_TEMPLATE_CHARS} "
            f"characters and {MAX_TEMPLATE_LEVELS} folder levels. Use e.g. {DEFAULT_TEMPLATE!r} or "
            "'%collection_id/%SeriesInstanceUID'."
        )
    rest = _PLACEHOLDER.sub("", template)
    for sep in SEPARATORS:
        rest = rest.replace(sep, "")
    if rest:
        words = re.findall(r"%?[A-Za-z_]+", template)
        unknown = [w for w in words if w.lstrip("%") not in PLACEHOLDERS]
        hints = []
        for word in unknown[:3]:
            near = closest(word.lstrip("%"), list(PLACEHOLDERS), limit=1)
            hints.append(f"{word!r}" + (f" (did you mean '%{near[0]}'?)" if near else ""))
        found = ", ".join(hints) or repr(rest)
        raise TemplateError(
            f"dir_template {shown(template)} contains {found}. Use only the placeholders "
            + ", ".join(f"%{p}" for p in PLACEHOLDERS)
            + " joined by '_', '-' or '/', e.g. "
            + repr(DEFAULT_TEMPLATE)
            + "; pass an empty string to put every file directly in the download folder."
        )
    return template


def _fit_name(part: str) -> str:
    """One folder name cut to MAX_NAME_BYTES (several long values joined by '_' can pass it)."""
    data = part.encode("utf-8")
    return part if len(data) <= MAX_NAME_BYTES else data[:MAX_NAME_BYTES].decode("utf-8", "ignore")


def render_folder(template: str, values: dict[str, object]) -> str:
    """The relative folder for one series: placeholders replaced by sanitized values, '/'-separated."""
    pieces: list[str] = []
    for i, token in enumerate(_PLACEHOLDER.split(template)):
        if i % 2:
            pieces.append(safe_component(values.get(token)))
        else:
            pieces.append(token)
    parts = [_fit_name(p) for p in "".join(pieces).split("/") if p]
    # A part made only of separators ('-', '_') is harmless, but '.' or '..' can never appear: the
    # separators are not dots and every value went through safe_component.
    return "/".join(parts)
