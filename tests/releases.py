"""A synthetic "next IDC release" catalog for tests: the real catalog's tables, cut to a few collections,
with chosen series revised (a new crdc_series_uuid, a higher series_revised_idc_version, the old version
moved to prior_versions_index), removed (moved to prior_versions_index only), withdrawn (gone from both:
no release serves them any more) and added.

It is built the way the real build is (plain DuckDB, then the facts the worker reads), into a cache
folder of its own, so that a `Catalog` opened on it is an ordinary catalog of "release N+1".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import idc_index_data

from idc_mcp.catalog.build import CATALOG_FILE
from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.facts import write_facts
from idc_mcp.catalog.schemas import bundled_tables
from idc_mcp.config import Settings, load_settings

PRIOR_COLUMNS = (
    "collection_id, PatientID, SeriesInstanceUID, StudyInstanceUID, Modality, NULL AS gcs_bucket, "
    "crdc_series_uuid, series_size_MB, series_aws_url, aws_bucket"
)


@dataclass
class NextRelease:
    release: int
    catalog: Catalog
    settings: Settings
    revised: dict[str, str] = field(default_factory=dict)  # SeriesInstanceUID -> its new crdc_series_uuid
    added: list[str] = field(default_factory=list)


def build_next_release(
    built_catalog: Path,
    cache: Path,
    download_root: Path,
    collections: list[str],
    revised: list[str] = (),  # type: ignore[assignment]
    removed: list[str] = (),  # type: ignore[assignment]
    withdrawn: list[str] = (),  # type: ignore[assignment]
    added_from: str | None = None,  # a series whose copy (new UIDs) is added to its collection
) -> NextRelease:
    target = cache / idc_index_data.__version__ / CATALOG_FILE
    target.parent.mkdir(parents=True)
    con = duckdb.connect(str(target))
    try:
        con.execute(f"ATTACH '{built_catalog}' AS real (READ_ONLY)")
        release = con.execute("SELECT max(idc_version) FROM real.version_metadata_index").fetchone()[0] + 1
        for name in bundled_tables():
            where = " WHERE collection_id IN (SELECT unnest(?))" if name == "index" else ""
            con.execute(
                f'CREATE TABLE "{name}" AS SELECT * FROM real."{name}"{where}',
                [collections] if where else None,
            )
        con.execute("DETACH real")
        con.execute("INSERT INTO version_metadata_index VALUES (?, '2027-01-01')", [release])
        new_uuids = {uid: str(uuid.uuid4()) for uid in revised}
        for uid in [*revised, *removed]:
            con.execute(
                f"INSERT INTO prior_versions_index SELECT {PRIOR_COLUMNS}, series_init_idc_version, ? "
                "FROM index WHERE SeriesInstanceUID = ?",
                [release - 1, uid],
            )
        for uid, new in new_uuids.items():
            con.execute(
                "UPDATE index SET crdc_series_uuid = ?, series_revised_idc_version = ?, "
                "series_aws_url = 's3://' || aws_bucket || '/' || ? || '/*' WHERE SeriesInstanceUID = ?",
                [new, release, new, uid],
            )
        added: list[str] = []
        if added_from is not None:
            new_uid = f"2.25.{uuid.uuid4().int}"
            new_uuid = str(uuid.uuid4())
            con.execute(
                "INSERT INTO index SELECT * REPLACE (? AS SeriesInstanceUID, ? AS crdc_series_uuid, "
                "? AS series_init_idc_version, ? AS series_revised_idc_version) FROM index "
                "WHERE SeriesInstanceUID = ?",
                [new_uid, new_uuid, release, release, added_from],
            )
            added.append(new_uid)
        for uid in [*removed, *withdrawn]:
            con.execute("DELETE FROM index WHERE SeriesInstanceUID = ?", [uid])
        write_facts(con, list(bundled_tables()))
        con.execute("CHECKPOINT")
    finally:
        con.close()
    settings = load_settings(cache_dir=cache, download_root=download_root)
    return NextRelease(release, Catalog(settings), settings, new_uuids, added)
