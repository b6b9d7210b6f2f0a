"""Saved cohorts as the tools see them: save, list, compare with the current release, import an IDC
portal export, and what is new in a selection since a release.

The file format, its folder and the version look-ups live in `idc_mcp.cohorts`; this module resolves
selections (through `tools.selection`) and shapes the replies.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from idc_mcp import __version__, files
from idc_mcp.catalog.database import Catalog
from idc_mcp.cohorts import store
from idc_mcp.cohorts.format import Cohort, CohortError, Definition, Member, new_cohort
from idc_mcp.cohorts.imports import MAX_PROBLEMS_SHOWN, Export, parse_export
from idc_mcp.cohorts.versions import as_of, by_uuid, current_release, members_of, standings
from idc_mcp.tools.selection import Selection, SelectionError, resolve_selection, selection_filter

MAX_LISTED = 100  # series named per list in a reply
URI = "idc://cohorts/{name}"


class CohortSaved(BaseModel):
    name: str
    path: str = Field(description="the cohort file: share it to let others reproduce the cohort")
    uri: str
    member_count: int
    total_size_MB: float
    collections: list[str]
    idc_release: int = Field(description="the IDC release the members were resolved against")
    members_sha256: str
    notes: list[str]
    next_step: str


class CohortSummary(BaseModel):
    name: str
    description: str | None
    created: str | None
    idc_release: int | None
    member_count: int | None
    path: str
    problem: str | None = Field(description="why the file cannot be used, when it cannot")


class CohortList(BaseModel):
    folder: str
    cohorts: list[CohortSummary]


class RevisedMember(BaseModel):
    SeriesInstanceUID: str
    saved_crdc_series_uuid: str
    current_crdc_series_uuid: str
    revised_in_release: int | None


class RemovedMember(BaseModel):
    SeriesInstanceUID: str
    collection_id: str
    PatientID: str | None
    crdc_series_uuid: str
    last_release: int | None = Field(description="last release that served the saved version")
    available: bool = Field(description="the saved version can still be downloaded")


class CohortComparison(BaseModel):
    name: str
    saved_release: int
    current_release: int
    member_count: int
    unchanged: int
    revised: list[RevisedMember] = Field(description=f"at most {MAX_LISTED}")
    revised_count: int
    removed: list[RemovedMember] = Field(description=f"at most {MAX_LISTED}")
    removed_count: int
    unavailable: list[str] = Field(description="members no release serves any more (not downloadable)")
    would_add: list[str] | None = Field(description="series its definition selects today that it lacks")
    would_add_count: int | None
    summary: str
    next_step: str


class NewSeries(BaseModel):
    collection_id: str
    added: int
    revised: int


class WhatsNew(BaseModel):
    since_release: int
    current_release: int
    added_count: int = Field(description="series first released after since_release")
    revised_count: int = Field(description="older series revised after since_release")
    per_collection: list[NewSeries]
    series_uids: list[str] = Field(description=f"added or revised series, at most {MAX_LISTED}")
    sql: str = Field(description="a query listing them all")
    summary: str


def _definition(selection: Selection) -> Definition:
    return Definition(
        collection_ids=list(selection.collection_ids) if selection.collection_ids else None,
        patient_ids=list(selection.patient_ids) if selection.patient_ids else None,
        study_uids=list(selection.study_uids) if selection.study_uids else None,
        series_uids=list(selection.series_uids) if selection.series_uids else None,
        sql=selection.sql,
        analysis_results=selection.analysis_results,
    )


def _selection_of(definition: Definition) -> Selection:
    return Selection(
        collection_ids=tuple(definition.collection_ids) if definition.collection_ids else None,
        patient_ids=tuple(definition.patient_ids) if definition.patient_ids else None,
        study_uids=tuple(definition.study_uids) if definition.study_uids else None,
        series_uids=tuple(definition.series_uids) if definition.series_uids else None,
        sql=definition.sql,
        analysis_results=definition.analysis_results,
    )


def _store(
    catalog: Catalog,
    root: Path,
    name: str,
    description: str,
    definition: Definition,
    members: list[Member],
    overwrite: bool,
    notes: list[str],
    release: int | None = None,
) -> CohortSaved:
    cohort = new_cohort(
        name, description, definition, members,
        release if release is not None else current_release(catalog), catalog.settings.data_version,
        __version__,
    )  # fmt: skip
    path = store.save(root, cohort, overwrite)
    return _saved(cohort, path, notes)


def _saved(cohort: Cohort, path: Path, notes: list[str]) -> CohortSaved:
    collections = sorted({m.collection_id for m in cohort.members})
    size = sum(m.series_size_MB or 0 for m in cohort.members)
    return CohortSaved(
        name=cohort.name,
        path=str(path),
        uri=URI.format(name=cohort.name),
        member_count=cohort.member_count,
        total_size_MB=round(size, 3),
        collections=collections[:50],
        idc_release=cohort.idc_release,
        members_sha256=cohort.members_sha256,
        notes=notes,
        next_step=(
            f"Pass cohort={cohort.name!r} to check_licenses, estimate_size, get_citations, export_manifest "
            "or "
            "download: each member is used at its saved version. Share the file; a colleague puts it in the "
            "cohorts folder of their download root (or import_cohort it) to reproduce the cohort. "
            "compare_cohort shows what later IDC releases changed."
        ),
    )


def save_cohort(
    catalog: Catalog, root: Path, name: str, description: str, selection: Selection, overwrite: bool
) -> CohortSaved:
    """Resolve a selection now and save its members, each pinned to its current version."""
    store.check_name(name)
    notes: list[str] = []
    if selection.cohort is not None:  # a copy of a saved cohort, without members IDC no longer serves
        source = _load(root, selection.cohort)
        found = standings(catalog, source.members)
        members = [s.member for s in found.statuses if s.available]
        if lost := found.unavailable:
            notes.append(
                f"{len(lost)} member(s) of {source.name!r} are no longer served and were left out: "
                + ", ".join(s.member.SeriesInstanceUID for s in lost[:MAX_LISTED])
            )
        if not members:
            raise SelectionError(f"No member of cohort {source.name!r} is still served: nothing to save.")
        definition = Definition(cohort=source.name)
        return _store(
            catalog, root, name, description, definition, members, overwrite, notes, source.idc_release
        )
    resolved = resolve_selection(catalog, selection)
    members = members_of(catalog, resolved.series_uids)
    return _store(catalog, root, name, description, _definition(selection), members, overwrite, notes)


def _load(root: Path, name: str) -> Cohort:
    try:
        return store.load(root, name)
    except CohortError as exc:
        raise SelectionError(str(exc)) from exc


def list_cohorts(root: Path) -> CohortList:
    summaries = []
    for item in store.list_all(root):
        c = item.cohort
        summaries.append(
            CohortSummary(
                name=item.name,
                description=c.description if c else None,
                created=c.created if c else None,
                idc_release=c.idc_release if c else None,
                member_count=c.member_count if c else None,
                path=str(item.path),
                problem=item.problem,
            )
        )
    return CohortList(folder=str(store.folder(root)), cohorts=summaries)


def compare_cohort(catalog: Catalog, root: Path, name: str) -> CohortComparison:
    """Each member's standing in the current release, and what re-running a query definition adds."""
    cohort = _load(root, name)
    found = standings(catalog, cohort.members)
    revised = [
        RevisedMember(
            SeriesInstanceUID=s.member.SeriesInstanceUID,
            saved_crdc_series_uuid=s.member.crdc_series_uuid,
            current_crdc_series_uuid=s.current_uuid or "",
            revised_in_release=s.revised_in,
        )
        for s in found.of("revised")
    ]
    removed = [
        RemovedMember(
            SeriesInstanceUID=s.member.SeriesInstanceUID,
            collection_id=s.member.collection_id,
            PatientID=s.member.PatientID,
            crdc_series_uuid=s.member.crdc_series_uuid,
            last_release=s.last_release,
            available=s.available,
        )
        for s in found.of("removed")
    ]
    unavailable = [s.member.SeriesInstanceUID for s in found.unavailable]
    would_add: list[str] | None = None
    if cohort.definition.is_query:
        try:
            today = resolve_selection(catalog, _selection_of(cohort.definition)).series_uids
        except SelectionError:
            today = []  # nothing it selects exists today
        saved = {m.SeriesInstanceUID for m in cohort.members}
        would_add = [u for u in today if u not in saved]
    release = current_release(catalog)
    unchanged = len(found.of("unchanged"))
    summary = (
        f"Cohort {name!r} ({cohort.member_count} series, saved at IDC release {cohort.idc_release}) against "
        f"release {release}: {unchanged} unchanged, {len(revised)} revised, {len(removed)} removed"
        + (f" ({len(unavailable)} of them no longer downloadable)" if unavailable else "")
        + (f"; its definition selects {len(would_add)} more series today" if would_add else "")
        + "."
    )
    step = f"download(cohort={name!r}) fetches every member at its saved version"
    if unavailable:
        step = (
            f"{len(unavailable)} member(s) cannot be fetched at their saved version any more; "
            "save_cohort with "
            f"cohort={name!r} saves a copy without them"
        )
    if would_add:
        step += (
            "; to include the new series, save_cohort again with the definition's arguments under a new name"
        )
    return CohortComparison(
        name=name,
        saved_release=cohort.idc_release,
        current_release=release,
        member_count=cohort.member_count,
        unchanged=unchanged,
        revised=revised[:MAX_LISTED],
        revised_count=len(revised),
        removed=removed[:MAX_LISTED],
        removed_count=len(removed),
        unavailable=unavailable[:MAX_LISTED],
        would_add=would_add[:MAX_LISTED] if would_add is not None else None,
        would_add_count=len(would_add) if would_add is not None else None,
        summary=summary,
        next_step=step + ".",
    )


def whats_new(catalog: Catalog, selection: Selection, since_release: int) -> WhatsNew:
    """Series of a selection first released, or revised, after `since_release`."""
    release = current_release(catalog)
    if since_release < 1 or since_release > release:
        raise SelectionError(f"since_release must be a release from 1 to {release} (the current one).")
    where, params = selection_filter(catalog, selection)
    new = "(series_init_idc_version > ? OR series_revised_idc_version > ?)"
    rows = catalog.execute(
        f"SELECT collection_id, count(*) FILTER (series_init_idc_version > ?), "
        f"count(*) FILTER (series_init_idc_version <= ?) FROM index WHERE {where} AND {new} "
        "GROUP BY 1 ORDER BY 2 + 3 DESC, 1",
        [since_release, since_release, *params, since_release, since_release],
    ).rows
    uids = [
        r[0]
        for r in catalog.execute(
            f"SELECT SeriesInstanceUID FROM index WHERE {where} AND {new} "
            f"ORDER BY collection_id, PatientID, StudyInstanceUID, SeriesInstanceUID LIMIT {MAX_LISTED}",
            [*params, since_release, since_release],
        ).rows
    ]
    added = sum(r[1] for r in rows)
    revised = sum(r[2] for r in rows)
    return WhatsNew(
        since_release=since_release,
        current_release=release,
        added_count=added,
        revised_count=revised,
        per_collection=[NewSeries(collection_id=r[0], added=r[1], revised=r[2]) for r in rows],
        series_uids=uids,
        sql=(
            "SELECT SeriesInstanceUID, collection_id, series_init_idc_version, series_revised_idc_version "
            f"FROM index WHERE (series_init_idc_version > {since_release} OR series_revised_idc_version > "
            f"{since_release}) AND <the selection's filters>"
        ),
        summary=(
            f"Since release {since_release} (current: {release}), the selection gained {added:,} new "
            "series and "
            f"{revised:,} of its series were revised."
        ),
    )


def read_export(root: Path, path: str | None, content: str | None) -> tuple[str, str]:
    """(text, name) of an export given as a file in the download root or as text."""
    if (path is None) == (content is None):
        raise CohortError("Give either path (a file in the download root) or content (the export's text).")
    if content is not None:
        return content, "the export"
    target = files.resolve_inside(root, path)
    return store.read_text(target, f"{path!r}"), Path(path or "").name


def import_cohort(
    catalog: Catalog, root: Path, name: str, description: str, text: str, source: str, overwrite: bool
) -> CohortSaved:
    """A portal export (s5cmd manifest, CSV or JSON) saved as a cohort at the versions it names."""
    store.check_name(name)
    export = parse_export(text, source)
    members, problems = _resolve_export(catalog, export)
    problems = export.problems + problems
    if problems:
        shown = "\n".join(problems[:MAX_PROBLEMS_SHOWN])
        more = (
            f"\n(and {len(problems) - MAX_PROBLEMS_SHOWN} more)" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        )
        raise CohortError(
            f"{source}: {len(problems)} of {len(export.entries) + len(export.problems)} entries cannot be "
            f"imported; nothing was saved:\n{shown}{more}\nFix or remove those lines and import again."
        )
    notes = [f"Imported {len(members)} series from {source} ({export.kind})."]
    if export.release is None:
        notes.append("The export names no idc_data_version: its series were taken at the current release.")
    definition = Definition(imported_from=source[:200])
    return _store(catalog, root, name, description, definition, members, overwrite, notes, export.release)


def _resolve_export(catalog: Catalog, export: Export) -> tuple[list[Member], list[str]]:
    problems: list[str] = []
    members: dict[str, Member] = {}
    by_version = [e for e in export.entries if e.crdc_series_uuid]
    by_series = [e for e in export.entries if not e.crdc_series_uuid]
    if by_version:
        found = by_uuid(catalog, sorted({e.crdc_series_uuid for e in by_version if e.crdc_series_uuid}))
        for entry in by_version:
            member = found.get(entry.crdc_series_uuid or "")
            if member is None:
                problems.append(
                    f"line {entry.line}: crdc_series_uuid {entry.crdc_series_uuid} is unknown to the catalog "
                    "(neither a current nor a prior version of any series)"
                )
            elif entry.series_uid and entry.series_uid != member.SeriesInstanceUID:
                problems.append(
                    f"line {entry.line}: crdc_series_uuid {entry.crdc_series_uuid} is a version of "
                    f"{member.SeriesInstanceUID}, not of {entry.series_uid}"
                )
            else:
                members[member.SeriesInstanceUID] = member
    if by_series:
        uids = list(dict.fromkeys(e.series_uid for e in by_series if e.series_uid))
        if export.release is not None:
            at = as_of(catalog, uids, export.release)
            got = {m.SeriesInstanceUID: m for m in at.members}
            why = f"release {export.release} did not serve it (see prior_versions_index)"
        else:
            got = {m.SeriesInstanceUID: m for m in members_of(catalog, uids)}
            why = "not in the current release; give the export's idc_data_version to take an older one"
        for entry in by_series:
            member = got.get(entry.series_uid or "")
            if member is None:
                problems.append(f"line {entry.line}: SeriesInstanceUID {entry.series_uid} is unknown: {why}")
            else:
                members[member.SeriesInstanceUID] = member
    return list(members.values()), problems
