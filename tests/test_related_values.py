"""Related values by word overlap, in both directions and in any case (never a synonym list): a literal
that is the longer form of a common value, a vendor name with a suffix in other case, and an absent
value whose words partly match existing ones."""

from __future__ import annotations

import re

from idc_mcp.catalog.database import get_catalog
from idc_mcp.diagnostics import word_overlap
from idc_mcp.tools.query import run_query
from tests.parquet import parquet_sql


def count(where: str) -> int:
    return parquet_sql(f'SELECT count(*) FROM "index" WHERE {where}')[0][0]


def note_of(sql: str) -> str:
    (note,) = run_query(get_catalog(), sql).diagnostics
    return note


def suggested_in_list(note: str) -> str:
    match = re.search(r"use (Manufacturer IN \(.+?\))[ .]", note)
    assert match, note
    return match.group(1)


def test_words_relate_in_either_direction_and_in_any_case():
    assert word_overlap.related("GE", "GE MEDICAL SYSTEMS", set())
    assert word_overlap.related("Siemens Healthineers", "SIEMENS", set())  # the longer one given
    assert word_overlap.related("GE Healthcare", "GE HEALTHCARE", set())
    # A shared first word relates two values only when that word is itself a value (a bare name).
    assert word_overlap.related("GE Healthcare", "GE MEDICAL SYSTEMS", {"ge"})
    assert not word_overlap.related("CC BY-NC 4.0", "CC BY 4.0", {"siemens"})
    assert not word_overlap.related("GEMS", "GE", {"ge"})


def test_longer_literal_gets_the_shorter_common_value():
    own = count("Manufacturer = 'Siemens Healthineers'")
    note = note_of("SELECT count(*) FROM index WHERE Manufacturer = 'Siemens Healthineers'")
    assert "'SIEMENS' (" in note
    wider = suggested_in_list(note)
    assert run_query(get_catalog(), f"SELECT count(*) AS n FROM index WHERE {wider}").rows[0]["n"] > 10 * own


def test_vendor_with_a_suffix_gets_the_bare_vendor_in_capitals():
    note = note_of("SELECT count(*) FROM index WHERE Manufacturer = 'GE Healthcare'")
    assert "'GE MEDICAL SYSTEMS' (" in note and "'GE' (" in note


def test_values_that_only_share_a_prefix_word_that_is_no_value_stay_unrelated():
    for sql in (
        "SELECT count(*) FROM index WHERE license_short_name = 'CC BY-NC 4.0'",
        "SELECT count(*) FROM index WHERE collection_id = 'tcga_luad'",
    ):
        assert run_query(get_catalog(), sql).diagnostics == [], sql


def test_absent_value_gets_the_values_sharing_its_words():
    note = note_of("SELECT count(*) FROM index WHERE Manufacturer = 'Siemens Medical Solutions'")
    nearest = note.split("nearest existing values:", 1)[1].split(". ", 1)[0]
    assert "'SIEMENS'" in nearest
    assert "Use Manufacturer = 'SIEMENS' instead" in note
    note = note_of("SELECT count(*) FROM index WHERE Manufacturer = 'Hologic Medical'")
    assert "Use Manufacturer = 'HOLOGIC, Inc.' instead" in note
