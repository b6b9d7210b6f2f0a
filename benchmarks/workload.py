"""The fixed workload of typical assistant queries, shared by the benchmark and its layout workers."""

from __future__ import annotations

# (name, SQL). Plain DuckDB SQL that both this server and idc-index's `sql_query` accept.
WORKLOAD: list[tuple[str, str]] = [
    ("count_by_modality", "SELECT Modality, count(*) AS n FROM index GROUP BY Modality ORDER BY n DESC"),
    (
        "collection_ct_series",
        "SELECT SeriesInstanceUID, PatientID, StudyInstanceUID, series_size_MB FROM index "
        "WHERE collection_id = 'tcga_luad' AND Modality = 'CT'",
    ),
    (
        "join_by_cancer_type",
        "SELECT i.collection_id, count(DISTINCT i.PatientID) AS patients, count(*) AS series "
        "FROM index AS i JOIN collections_index AS c ON i.collection_id = c.collection_id "
        "WHERE c.cancer_types ILIKE '%lung%' GROUP BY i.collection_id ORDER BY patients DESC",
    ),
    (
        "size_by_cancer_type",
        "SELECT c.cancer_types, round(sum(i.series_size_MB) / 1024, 1) AS size_GB, count(*) AS series "
        "FROM index AS i JOIN collections_index AS c ON i.collection_id = c.collection_id "
        "WHERE i.Modality = 'CT' GROUP BY c.cancer_types ORDER BY size_GB DESC",
    ),
    (
        "size_by_collection",
        "SELECT collection_id, round(sum(series_size_MB) / 1024, 1) AS size_GB FROM index "
        "GROUP BY collection_id ORDER BY size_GB DESC",
    ),
    (
        "license_breakdown",
        "SELECT license_short_name, count(*) AS series, count(DISTINCT collection_id) AS collections "
        "FROM index GROUP BY license_short_name ORDER BY series DESC",
    ),
    (
        "like_series_description",
        "SELECT collection_id, SeriesDescription, count(*) AS n FROM index "
        "WHERE SeriesDescription ILIKE '%t2%flair%' GROUP BY collection_id, SeriesDescription "
        "ORDER BY n DESC",
    ),
    (
        "patient_lookup",
        "SELECT collection_id, StudyInstanceUID, SeriesInstanceUID, Modality, SeriesDescription "
        "FROM index WHERE PatientID = 'TCGA-17-Z011'",
    ),
    (
        "series_lookup",
        "SELECT collection_id, PatientID, Modality, BodyPartExamined, series_size_MB, license_short_name "
        "FROM index WHERE SeriesInstanceUID = "
        "'1.3.6.1.4.1.14519.5.2.1.7777.9002.927019691832186585694434534946'",
    ),
    ("distinct_body_parts", "SELECT DISTINCT BodyPartExamined FROM index ORDER BY BodyPartExamined"),
    (
        "window_largest_mr_per_collection",
        "SELECT collection_id, SeriesInstanceUID, series_size_MB FROM ("
        "SELECT collection_id, SeriesInstanceUID, series_size_MB, row_number() OVER "
        "(PARTITION BY collection_id ORDER BY series_size_MB DESC) AS rk FROM index WHERE Modality = 'MR'"
        ") AS ranked WHERE rk = 1 ORDER BY series_size_MB DESC",
    ),
    (
        "patients_per_collection_modality",
        "SELECT collection_id, Modality, count(DISTINCT PatientID) AS patients FROM index "
        "WHERE collection_id IN ('nlst', 'tcga_brca', 'ispy2') GROUP BY ALL ORDER BY patients DESC",
    ),
]
