"""Generate `references/metadata_schema.md` from the bundled schema JSON and the bundled data.

Every table idc-index-data describes is listed (also the ones that are fetched on demand), with every
column's type, mode and description. The "facts" section is computed from the data at generation time:
exact license strings, the collection id pattern, typical Modality / BodyPartExamined / PatientSex values,
and where cancer types and tumor locations live. A test regenerates this text and compares it with the
file, so the reference can never drift from the data it describes.
"""

from __future__ import annotations

from typing import Any

import idc_index_data

from idc_mcp.catalog.database import INDICES_DIR, Catalog
from idc_mcp.catalog.schemas import JOIN_KEYS, TableInfo, all_tables, get_table
from idc_mcp.indices import clinical, common, fetch

TOP_MODALITIES = 20
TOP_BODY_PARTS = 25
TOP_LOCATIONS = 20
TOP_CANCER_TYPES = 20


def _cell(text: Any) -> str:
    """Text made safe for one markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _values_table(header: tuple[str, str], rows: list[tuple[Any, Any]]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | ---: |"]
    for value, count in rows:
        shown = "NULL (not set)" if value is None else f"`{_cell(value)}`"
        lines.append(f"| {shown} | {count:,} |")
    return lines


def _facts(catalog: Catalog) -> list[str]:
    q = catalog.execute
    out = ["## Facts assistants get wrong (computed from the data)", ""]

    licenses = q("SELECT license_short_name, count(*) FROM index GROUP BY 1 ORDER BY 2 DESC, 1").rows
    out += [
        "### Licenses: exact strings",
        "",
        "`index.license_short_name` holds exactly these values (series per value). Compare with `=` or "
        "`IN`, never `'CC-BY'`; non-commercial licenses contain `NC`.",
        "",
        *_values_table(("license_short_name", "series"), licenses),
        "",
    ]
    ar_licenses = q("SELECT DISTINCT license_short_name FROM analysis_results_index ORDER BY 1").rows
    source_licenses = q(
        "SELECT DISTINCT s.license.license_short_name FROM "
        "(SELECT unnest(sources) AS s FROM collections_index) ORDER BY 1"
    ).rows
    out += [
        "Per-collection licenses and DOIs are in `collections_index.sources` (a list of structs: "
        "`source_doi`, `source_url`, `license.license_short_name`, `license.license_url`, `citation`, ...); "
        "their license strings: " + ", ".join(f"`{r[0]}`" for r in source_licenses) + ".",
        "`analysis_results_index.license_short_name` values: "
        + ", ".join(f"`{r[0]}`" for r in ar_licenses)
        + ".",
        "",
    ]

    (n_coll, n_pattern) = q(
        "SELECT count(*), count(*) FILTER (WHERE regexp_full_match(collection_id, '[a-z0-9_]+')) "
        "FROM collections_index"
    ).rows[0]
    examples = [
        r[0] for r in q("SELECT collection_id FROM collections_index ORDER BY subjects DESC, 1 LIMIT 8").rows
    ]
    out += [
        "### Collection ids: lowercase with underscores",
        "",
        f"{n_pattern} of the {n_coll} `collection_id` values are lowercase letters, digits and underscores "
        "(`tcga_luad`, not `TCGA-LUAD`). The display name is `collections_index.collection_name`. "
        "Largest collections by subjects: " + ", ".join(f"`{e}`" for e in examples) + ".",
        "",
    ]

    modalities = q(
        f"SELECT Modality, count(*) FROM index GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP_MODALITIES}"
    ).rows
    out += [
        f"### Typical `Modality` values (top {TOP_MODALITIES}, series per value)",
        "",
        "DICOM codes: `CT`, `MR` (not `MRI`), `PT` (PET, not `PET`), `SM` (slide microscopy), `SEG` "
        "(segmentation), `SR` (structured report), `ANN` (microscopy annotations), `RTSTRUCT`, ...",
        "",
        *_values_table(("Modality", "series"), modalities),
        "",
    ]
    body_parts = q(
        f"SELECT BodyPartExamined, count(*) FROM index GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP_BODY_PARTS}"
    ).rows
    (null_share, sm_set) = q(
        "SELECT avg(CASE WHEN BodyPartExamined IS NULL THEN 1 ELSE 0 END), "
        "count(*) FILTER (WHERE Modality = 'SM' AND BodyPartExamined IS NOT NULL) FROM index"
    ).rows[0]
    sm_note = "always for SM" if sm_set == 0 else "including most SM"
    mixed = q(
        "SELECT BodyPartExamined, count(*) FROM index WHERE BodyPartExamined <> upper(BodyPartExamined) "
        "GROUP BY 1 ORDER BY 2 DESC, 1"
    ).rows
    mixed_note = (
        f" except in {sum(n for _, n in mixed):,} series ("
        + ", ".join(f"`'{_cell(v)}'`" for v, _ in mixed[:4])
        + "): compare with `upper(BodyPartExamined)` to catch them"
        if mixed
        else ""
    )
    out += [
        f"### Typical `BodyPartExamined` values (top {TOP_BODY_PARTS}, series per value)",
        "",
        f"Uppercase DICOM terms (`CHEST`, `HEADNECK`){mixed_note}. NULL for {null_share:.0%} of series "
        f"({sm_note}), and `CHEST` vs `LUNG` depends on the scanner: for an organ, prefer "
        "`collections_index.tumor_locations` or try both.",
        "",
        *_values_table(("BodyPartExamined", "series"), body_parts),
        "",
    ]
    sexes = q("SELECT PatientSex, count(*) FROM index GROUP BY 1 ORDER BY 2 DESC, 1").rows
    unset = sum(n for v, n in sexes if v is None) / max(1, sum(n for _, n in sexes))
    sex_note = (
        f"NULL for {unset:.0%} of series (the majority: count NULLs before reporting a split); where set, "
        if unset > 0.5
        else f"NULL for {unset:.0%} of series; where set, "
    )
    units = {
        str(u): (n, example)
        for u, n, example in q(
            "SELECT upper(regexp_extract(PatientAge, '^\\d+([A-Za-z])$', 1)) AS u, count(*), "
            "mode(PatientAge) FROM index WHERE regexp_full_match(PatientAge, '^\\d+[A-Za-z]$') GROUP BY 1"
        ).rows
    }
    unit_names = {"M": "months", "W": "weeks", "D": "days"}
    (phantoms, human_phantoms, oldest) = q(
        "SELECT count(DISTINCT c.collection_id), count(DISTINCT c.collection_id) FILTER (WHERE c.species = "
        "'Human'), max(TRY_CAST(regexp_extract(i.PatientAge, '^(\\d+)[Yy]$', 1) AS INTEGER)) "
        "FROM collections_index AS c LEFT JOIN index AS i ON i.collection_id = c.collection_id "
        "WHERE c.collection_id LIKE '%phantom%'"
    ).rows[0]
    phantom_note = (
        f" The {phantoms} phantom collections (ids containing `phantom`) carry placeholder ages (up to "
        f"`'{oldest:03d}Y'`) and {human_phantoms} of them are labelled species `'Human'`: leave them out of "
        "age statistics."
        if phantoms and oldest is not None
        else ""
    )
    other_units = ", ".join(
        f"`'{units[u][1]}'` {name} ({units[u][0]:,} series)" for u, name in unit_names.items() if u in units
    )
    out += [
        "### `PatientSex` and `PatientAge`",
        "",
        f"`PatientSex` is a DICOM code, not `Male`/`Female`: {sex_note}`F`, `M`, `O` and rare others (the "
        "table below counts them all). `PatientAge` is DICOM age text such as `'065Y'` "
        f"(also {other_units}, bare numbers): years are "
        "`TRY_CAST(regexp_extract(PatientAge, '^(\\d+)[Yy]?$', 1) AS INTEGER)`, NULL for the rest. "
        "`StudyDate` and `SeriesDate` are text `'YYYY-MM-DD'`: compare `TRY_CAST(StudyDate AS DATE)`."
        + phantom_note,
        "",
        *_values_table(("PatientSex", "series"), sexes),
        "",
    ]

    locations = q(
        "SELECT loc, count(*) FROM (SELECT lower(trim(unnest(string_split(tumor_locations, ',')))) AS loc "
        f"FROM collections_index) WHERE loc <> '' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP_LOCATIONS}"
    ).rows
    cancers = q(
        "SELECT ct, count(*) FROM (SELECT lower(trim(unnest(string_split(cancer_types, ',')))) AS ct "
        f"FROM collections_index) WHERE ct <> '' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP_CANCER_TYPES}"
    ).rows
    out += [
        "### Cancer types and tumor locations live in `collections_index`",
        "",
        "`index` has no cancer type column. `collections_index.cancer_types` and `.tumor_locations` are "
        "comma-separated free text with mixed case (`Lung` and `lung`): match with `ILIKE '%lung%'` and "
        "join to `index` on `collection_id`.",
        "",
        "```sql",
        "SELECT i.collection_id, i.Modality, count(*) AS series",
        "FROM index AS i",
        "JOIN collections_index AS c ON i.collection_id = c.collection_id",
        "WHERE c.cancer_types ILIKE '%lung%'",
        "GROUP BY 1, 2",
        "ORDER BY series DESC",
        "```",
        "",
        f"Most common tumor locations (collections, lowercased, top {TOP_LOCATIONS}):",
        "",
        *_values_table(("tumor location", "collections"), locations),
        "",
        f"Most common cancer types (collections, lowercased, top {TOP_CANCER_TYPES}):",
        "",
        *_values_table(("cancer type", "collections"), cancers),
        "",
        *_joins(),
    ]
    return out


def _pointers(info: TableInfo) -> list[str]:
    """Columns of a derived-series index that name the series it describes (segmented_/referenced_...)."""
    return [c for c in info.column_names if c.endswith("_SeriesInstanceUID")]


def _joins() -> list[str]:
    fetchable = fetch.fetchable()
    by_series = [
        n for n, t in fetchable.items() if n != common.CLINICAL_INDEX and t.column("SeriesInstanceUID")
    ]
    lines = [
        "### Joins",
        "",
        "| from | to | key |",
        "| --- | --- | --- |",
        "| `index` | `collections_index` | `collection_id` |",
        "| `index` | `analysis_results_index` | `analysis_result_id` (NULL for original images) |",
        "| `index` | `prior_versions_index` | `SeriesInstanceUID` (older versions of the same series) |",
        "| `index` | " + ", ".join(f"`{n}`" for n in by_series) + " | `SeriesInstanceUID` (the series "
        "the row describes) |",
    ]
    for name, info in fetchable.items():
        for column in _pointers(info):
            key = f"`{name}.{column} = index.SeriesInstanceUID`"
            lines.append(f"| `{name}` | `index` (the images it describes) | {key} |")
    lines += [
        "| `sm_instance_index` | `sm_index` | `SeriesInstanceUID` (one row per slide image instance) |",
        "| `ann_group_index` | `ann_index` | `SeriesInstanceUID` (the groups of one annotation series) |",
        f"| `clinical_<short_table_name>` | `index` | `{clinical.PATIENT_COLUMN} = index.PatientID`, and "
        "`index.collection_id` = the table's `clinical_index.collection_id` (a PatientID is unique only "
        "within its collection) |",
        "| `clinical_index` | `index` | `collection_id` |",
        "",
    ]
    return lines


def _fetched_indices() -> list[str]:
    """Where the indices that are not bundled come from, where they are cached, and the clinical tables."""
    version = idc_index_data.__version__
    major = version.split(".")[0]
    fetchable = fetch.fetchable()
    info = get_table(common.CLINICAL_INDEX)
    assert info is not None
    # The clinical_index columns named below must exist: fail the generation (and its test) otherwise.
    for column in ("collection_id", "table_name", "short_table_name", "column", "column_label", "values"):
        assert info.column(column) is not None, f"clinical_index has no column {column!r}"
    lines = [
        "## Specialized indices (fetched on demand)",
        "",
        f"idc-index-data {version} bundles only "
        + ", ".join(f"`{n}`" for n, t in all_tables().items() if t.bundled)
        + ". The other indices ("
        + ", ".join(f"`{n}`" for n in fetchable)
        + ") ship only as schemas (listed below with every column). `fetch_index(name)` installs one:",
        "",
        f"- **Source**: the idc-index-data release assets of the pinned version, "
        f"`{fetch.RELEASE_URL.format(version=version)}/<name>.parquet` (as idc-index's own "
        "`fetch_index` does), verified against the sha256 the release listing publishes (when it does) and "
        "against the schema's columns. `IDC_MCP_INDEX_BASE_URL` points at a mirror instead; "
        "`IDC_MCP_INDEX_DIR` at a folder of pre-downloaded `<name>.parquet` files, used without any "
        "network (air-gapped machines).",
        f"- **Cache**: `<IDC_MCP_CACHE_DIR>/{version}/{INDICES_DIR}/` (`IDC_MCP_CACHE_DIR` defaults to "
        "`~/.cache/idc-mcp`), one DuckDB file per index, kept per idc-index-data version. A cached index "
        "is installed at once on the next start; fetching it again is instant.",
        "- **Before fetching**: `list_tables` shows each index as not installed, with its size when known "
        'and the call that installs it (`fetch_index("sm_index")`); a query on it answers with that call. '
        "Once fetched it is queryable with `query` like any table, and `describe_table` shows its values.",
        "",
        "### Clinical tables: `clinical_<short_table_name>`",
        "",
        '`fetch_index("clinical_index")` also installs the clinical tables `clinical_index` lists: IDC\'s '
        f"BigQuery clinical dataset `bigquery-public-data.idc_v{major}_clinical`, exported to "
        f"`s3://{clinical.BUCKET}/{clinical.source_prefix_for(version)}` (with `IDC_MCP_INDEX_DIR`: its "
        "`clinical_data/<short_table_name>/*.parquet`). Each is queryable as "
        "`clinical_<short_table_name>` (lowercase; characters other than letters, digits and `_` become "
        "`_`), e.g. `clinical_nlst_prsn` for the NLST participant table `nlst_prsn`.",
        "",
        "- `clinical_index` has one row per clinical column: `collection_id`, `table_name` (the BigQuery "
        "table), `short_table_name` (the name after `clinical_`), `column`, `column_label` (what the "
        "column means, in words) and `values` (coded values with their meaning, when the column is coded). "
        "Read it before querying a clinical table: column names are terse codes.",
        f"- Every clinical table has `{clinical.PATIENT_COLUMN}`, the DICOM `PatientID`: join with "
        f"`clinical_<x>.{clinical.PATIENT_COLUMN} = index.PatientID` and also match `index.collection_id` "
        "to the table's collection.",
        "- Their columns differ per table and have no schema here: `describe_table` shows them once "
        "installed.",
        "",
    ]
    return lines


def _table_section(info: TableInfo, catalog: Catalog) -> list[str]:
    if info.bundled:
        rows = catalog.row_count(info.name)
        status = f"bundled with idc-index-data, {rows:,} rows" if rows is not None else "bundled"
    else:
        status = f'not bundled: call `fetch_index("{info.name}")` first'
    keys = [k for k in JOIN_KEYS if info.column(k) is not None]
    lines = [
        f"### `{info.name}`",
        "",
        f"*{status}*" + (f"; join keys: {', '.join(f'`{k}`' for k in keys)}" if keys else ""),
        "",
        _cell(info.description),
        "",
        "| column | type | mode | description |",
        "| --- | --- | --- | --- |",
    ]
    for col in info.columns:
        lines.append(f"| `{col.name}` | {col.type} | {col.mode} | {_cell(col.description)} |")
    lines.append("")
    return lines


def generate_schema_reference(catalog: Catalog) -> str:
    tables = all_tables()
    lines = [
        "# IDC metadata schema",
        "",
        "<!-- Generated by `python -m idc_mcp.docs --write-schema-reference` from idc-index-data "
        f"{idc_index_data.__version__}. Do not edit by hand: a test compares this file with a fresh "
        "generation. -->",
        "",
        f"Every table of idc-index-data {idc_index_data.__version__} (IDC data release "
        f"v{idc_index_data.__version__.split('.')[0]}), with every column. The main table is `index` "
        "(one row per DICOM series). Tables marked *not bundled* are fetched on demand with "
        "`fetch_index(name)`. The same schemas are served as `idc://tables/{table}`; `describe_table` "
        "adds live value counts.",
        "",
        "Tables: " + ", ".join(f"`{name}`" for name in tables) + ".",
        "",
        *_facts(catalog),
        *_fetched_indices(),
        "## Tables and columns",
        "",
    ]
    for info in tables.values():
        lines += _table_section(info, catalog)
    return "\n".join(lines).rstrip() + "\n"
