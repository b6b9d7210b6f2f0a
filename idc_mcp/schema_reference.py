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

from idc_mcp.catalog import Catalog
from idc_mcp.schemas import JOIN_KEYS, TableInfo, all_tables

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
    out += [
        f"### Typical `BodyPartExamined` values (top {TOP_BODY_PARTS}, series per value)",
        "",
        f"Uppercase DICOM terms (`CHEST`, `HEADNECK`). NULL for {null_share:.0%} of series ({sm_note}), "
        "and `CHEST` vs `LUNG` depends on the scanner: for an organ, prefer "
        "`collections_index.tumor_locations` or try both.",
        "",
        *_values_table(("BodyPartExamined", "series"), body_parts),
        "",
    ]
    sexes = q("SELECT PatientSex, count(*) FROM index GROUP BY 1 ORDER BY 2 DESC, 1").rows
    out += [
        "### `PatientSex` and `PatientAge`",
        "",
        "`PatientSex` is a DICOM code (`F`, `M`, `O`), not `Male`/`Female`. `PatientAge` is a string "
        "such as `'065Y'`: use `TRY_CAST(substr(PatientAge, 1, 3) AS INTEGER)` with "
        "`PatientAge LIKE '%Y'` for years.",
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
        "### Joins",
        "",
        "| from | to | key |",
        "| --- | --- | --- |",
        "| `index` | `collections_index` | `collection_id` |",
        "| `index` | `analysis_results_index` | `analysis_result_id` (NULL for original images) |",
        "| `index` | `prior_versions_index` | `SeriesInstanceUID` (older versions of the same series) |",
        "| `index` | `sm_index`, `seg_index`, `ct_index`, `mr_index`, `pt_index`, ... "
        "| `SeriesInstanceUID` |",
        "| `seg_index` | `index` (the segmented images) | `seg_index.segmented_SeriesInstanceUID = "
        "index.SeriesInstanceUID` |",
        "| `rtstruct_index` | `index` (the referenced images) | "
        "`rtstruct_index.referenced_SeriesInstanceUID = "
        "index.SeriesInstanceUID` |",
        "| `sm_instance_index` | `sm_index` | `SeriesInstanceUID` |",
        "| `clinical_index` | `index` | `collection_id` (then the clinical table's patient column) |",
        "",
    ]
    return out


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
        "## Tables and columns",
        "",
    ]
    for info in tables.values():
        lines += _table_section(info, catalog)
    return "\n".join(lines).rstrip() + "\n"
