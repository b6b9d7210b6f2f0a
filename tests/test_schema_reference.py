"""The generated schema reference (references/metadata_schema.md) is fresh and says what the data says."""

from __future__ import annotations

from pathlib import Path

import duckdb
import idc_index_data

from idc_mcp.catalog.database import get_catalog
from idc_mcp.guides import resources
from idc_mcp.guides.schema_reference import generate_schema_reference

LOCATION = resources.locate_docs()


def test_metadata_schema_reference_is_a_fresh_generation():
    # Regenerate with: python -m idc_mcp.guides --write-schema-reference
    on_disk = (LOCATION.references_dir / "metadata_schema.md").read_text(encoding="utf-8")
    assert on_disk == generate_schema_reference(get_catalog())


def test_the_schema_reference_command_writes_the_generated_file(tmp_path: Path):
    target = tmp_path / "metadata_schema.md"
    assert resources.main(["--write-schema-reference", "--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == generate_schema_reference(get_catalog())
    assert resources.main([]) == 2  # no action asked: help, and a failing exit code


def test_metadata_schema_reference_lists_every_index_and_column_of_the_bundled_json():
    # Read straight from idc-index-data, not through our schema module.
    text = resources.read_reference("metadata_schema", LOCATION)
    for key, meta in idc_index_data.INDEX_METADATA.items():
        name = "index" if key == "idc_index" else key
        assert f"### `{name}`" in text
        section = text.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        for column in meta["schema"]["columns"]:
            assert f"| `{column['name']}` |" in section, f"{name}.{column['name']}"


def test_metadata_schema_reference_says_where_fetched_indices_come_from_and_are_cached():
    text = resources.read_reference("metadata_schema", LOCATION)
    section = text.split("## Specialized indices (fetched on demand)", 1)[1].split("\n## ", 1)[0]
    version = idc_index_data.__version__
    assert f"`<IDC_MCP_CACHE_DIR>/{version}/indices/`" in section
    assert f"releases/download/{version}/<name>.parquet" in section
    for needle in ("fetch_index(name)", "IDC_MCP_INDEX_DIR", "IDC_MCP_INDEX_BASE_URL", "list_tables"):
        assert needle in section, needle
    # Every index that is not bundled (read straight from idc-index-data) is named there.
    for key, meta in idc_index_data.INDEX_METADATA.items():
        if meta.get("parquet_filepath") is None:
            assert f"`{key}`" in section, key


def test_metadata_schema_reference_documents_clinical_tables_and_their_join():
    text = resources.read_reference("metadata_schema", LOCATION)
    clinical_columns = {
        c["name"] for c in idc_index_data.INDEX_METADATA["clinical_index"]["schema"]["columns"]
    }
    assert {"short_table_name", "column_label", "collection_id"} <= clinical_columns
    assert "`clinical_<short_table_name>`" in text and "`column_label`" in text
    assert "clinical_<x>.dicom_patient_id = index.PatientID" in text


def test_metadata_schema_reference_names_every_column_that_points_at_source_images():
    # The join keys from a derived series to the images it describes, read straight from idc-index-data.
    text = resources.read_reference("metadata_schema", LOCATION)
    joins = text.split("### Joins", 1)[1].split("\n## ", 1)[0]
    pointers = [
        (key, c["name"])
        for key, meta in idc_index_data.INDEX_METADATA.items()
        for c in meta["schema"]["columns"]
        if c["name"].endswith("_SeriesInstanceUID")
    ]
    assert {
        ("seg_index", "segmented_SeriesInstanceUID"),
        ("rtstruct_index", "referenced_SeriesInstanceUID"),
    } <= set(pointers)
    for key, column in pointers:
        assert f"`{key}.{column} = index.SeriesInstanceUID`" in joins, (key, column)


def test_metadata_schema_reference_states_the_exact_license_strings_from_the_parquet():
    text = resources.read_reference("metadata_schema", LOCATION)
    path = idc_index_data.IDC_INDEX_PARQUET_FILEPATH
    licenses = duckdb.sql(f"SELECT DISTINCT license_short_name FROM read_parquet('{path}')").fetchall()
    for (license_name,) in licenses:
        assert f"`{license_name}`" in text
