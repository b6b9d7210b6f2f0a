"""The cohort file: versioned JSON, one member per line, sorted, with a digest of the member lines.

A file reads like this (the members' keys in this order; `members_sha256` is the SHA-256 of the member
lines, as `to_text` writes them without indent and trailing comma, joined by newlines):

    {
      "format": "idc-mcp-cohort",
      "format_version": 1,
      "name": "lung_ct",
      ...
      "members": [
        {"SeriesInstanceUID": "1.2...", "crdc_series_uuid": "...", ...},
        {"SeriesInstanceUID": "1.3...", ...}
      ]
    }

`parse` refuses anything else with a message that says what is wrong: another format or version, a
missing or unknown field, a wrong type, members not sorted or repeated, a digest that does not match.
The JSON Schema (`cohort.schema.json`) is generated from these models; a test keeps the two the same.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from idc_mcp.errors import AssistantError

FORMAT = "idc-mcp-cohort"
FORMAT_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("cohort.schema.json")
MAX_MEMBERS = 100_000
MAX_FILE_BYTES = 64 * 2**20  # 100,000 members take ~40 MB
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
_UID = r"^[0-9]+(\.[0-9]+)*$"
_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class CohortError(AssistantError, ValueError):
    """A cohort that cannot be saved, read or used; the message says what is wrong and what to do."""


class Member(BaseModel):
    """One series, pinned to one version (`crdc_series_uuid`) of it."""

    model_config = ConfigDict(extra="forbid")

    SeriesInstanceUID: str = Field(pattern=_UID, max_length=64)
    crdc_series_uuid: str = Field(pattern=_UUID, description="this version of the series in IDC's buckets")
    collection_id: str = Field(max_length=256)
    PatientID: str | None = Field(max_length=256)
    StudyInstanceUID: str | None = Field(pattern=_UID, max_length=64)
    Modality: str | None = Field(max_length=64)
    instanceCount: int | None = Field(ge=0)
    series_size_MB: float | None = Field(ge=0)
    license_short_name: str | None = Field(max_length=256)
    source_DOI: str | None = Field(max_length=512)
    analysis_result_id: str | None = Field(max_length=256)


class Definition(BaseModel):
    """How the members were chosen: the selection arguments (re-run by compare_cohort), or where an
    imported list came from."""

    model_config = ConfigDict(extra="forbid")

    collection_ids: list[str] | None = None
    patient_ids: list[str] | None = None
    study_uids: list[str] | None = None
    series_uids: list[str] | None = None
    sql: str | None = None
    analysis_results: Literal["include", "exclude", "only"] = "include"
    cohort: str | None = Field(default=None, description="made from this saved cohort's members")
    imported_from: str | None = Field(default=None, description="the file name of an imported export")

    @property
    def is_query(self) -> bool:
        """True when re-running the definition today can select series the cohort does not hold."""
        return bool(self.collection_ids or self.patient_ids or self.study_uids or self.sql)


class Cohort(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["idc-mcp-cohort"] = FORMAT
    format_version: Literal[1] = FORMAT_VERSION
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(max_length=4000)
    created: str = Field(description="UTC, ISO 8601")
    idc_release: int = Field(ge=1, description="the IDC data release the members were resolved against")
    idc_index_data: str = Field(max_length=64, description="the idc-index-data version of that catalog")
    made_by: str = Field(max_length=64, description="idc-mcp version")
    definition: Definition
    member_count: int = Field(ge=0)
    members_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    members: list[Member]


def check_name(name: object) -> str:
    """A cohort name as a file name: letters, digits, '_', '-', '.', starting with a letter or digit."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        shown = repr(name)[:80]
        raise CohortError(
            f"Cohort name {shown} is not allowed: use 1-64 letters, digits, '_', '-' or '.', starting with a "
            "letter or digit (no folders, no '..'), e.g. 'lung_ct_2025'."
        )
    return name


def member_line(member: Member) -> str:
    return json.dumps(member.model_dump(), ensure_ascii=False, separators=(", ", ": "))


def digest(members: list[Member]) -> str:
    return hashlib.sha256("\n".join(member_line(m) for m in members).encode("utf-8")).hexdigest()


def sort_members(members: list[Member]) -> list[Member]:
    return sorted(members, key=lambda m: (m.SeriesInstanceUID, m.crdc_series_uuid))


def new_cohort(
    name: str,
    description: str,
    definition: Definition,
    members: list[Member],
    idc_release: int,
    idc_index_data: str,
    made_by: str,
) -> Cohort:
    check_name(name)
    if len(members) > MAX_MEMBERS:
        raise CohortError(f"A cohort holds at most {MAX_MEMBERS:,} series; this one has {len(members):,}.")
    members = sort_members(members)
    return Cohort(
        name=name,
        description=description,
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        idc_release=idc_release,
        idc_index_data=idc_index_data,
        made_by=made_by,
        definition=definition,
        member_count=len(members),
        members_sha256=digest(members),
        members=members,
    )


def to_text(cohort: Cohort) -> str:
    """The file's text: readable, diff-able (one member per line, sorted)."""
    head = cohort.model_dump(exclude={"members"})
    head["definition"] = cohort.definition.model_dump(exclude_defaults=True)
    body = json.dumps(head, ensure_ascii=False, indent=2)
    lines = [member_line(m) for m in cohort.members]
    members = "[\n" + ",\n".join("    " + line for line in lines) + "\n  ]" if lines else "[]"
    return body[: body.rindex("}")].rstrip() + ',\n  "members": ' + members + "\n}\n"


def parse(text: str, source: str) -> Cohort:
    """A cohort file's content, checked; `source` names it in messages."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CohortError(f"{source} is not valid JSON ({exc.msg} at line {exc.lineno}).") from exc
    if not isinstance(raw, dict):
        raise CohortError(
            f"{source} is not a cohort file: it holds a JSON {type(raw).__name__}, not an object."
        )
    if raw.get("format") != FORMAT:
        raise CohortError(
            f"{source} is not a cohort file: its 'format' is {raw.get('format')!r}, not {FORMAT!r}."
        )
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise CohortError(
            f"{source} has format_version {version!r}; this idc-mcp reads version {FORMAT_VERSION}. "
            "Open it with the idc-mcp version that wrote it (see 'made_by'), or save the cohort again."
        )
    try:
        cohort = Cohort.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False)[:5]:
            where = ".".join(str(p) for p in error["loc"])
            problems.append(f"{where}: {error['msg']}")
        more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise CohortError(f"{source} is not a valid cohort file: {'; '.join(problems)}{more}.") from exc
    _check_members(cohort, source)
    return cohort


def _check_members(cohort: Cohort, source: str) -> None:
    members = cohort.members
    if cohort.member_count != len(members):
        raise CohortError(
            f"{source}: member_count is {cohort.member_count} but the file lists {len(members)} members "
            "(edited by hand?). Save the cohort again instead of editing the file."
        )
    if len(members) > MAX_MEMBERS:
        raise CohortError(f"{source} lists {len(members):,} members; at most {MAX_MEMBERS:,} are read.")
    uids = [m.SeriesInstanceUID for m in members]
    if len(set(uids)) != len(uids):
        repeated = next(u for u in uids if uids.count(u) > 1)
        raise CohortError(f"{source} lists series {repeated} more than once.")
    if members != sort_members(members):
        raise CohortError(f"{source}: members are not sorted by SeriesInstanceUID (edited by hand?).")
    actual = digest(members)
    if actual != cohort.members_sha256:
        raise CohortError(
            f"{source}: the members do not match members_sha256 (the file says "
            f"{cohort.members_sha256[:12]}…, "
            f"the members give {actual[:12]}…): the member list was changed after it was saved. Ask for the "
            "original file, or save a new cohort from a selection."
        )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the file, as `cohort.schema.json` holds it."""
    schema = Cohort.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/idc-mcp/idc-mcp/cohort.schema.json"
    schema["title"] = "idc-mcp cohort file"
    schema["description"] = (
        "A saved IDC cohort: its definition and its members, each pinned to one version of a series "
        "(crdc_series_uuid); members_sha256 is the SHA-256 of the member lines as written."
    )
    return schema
