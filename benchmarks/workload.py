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

# Issue 26: everyday queries of six kinds, several of each. KINDS is the set the per-call work was
# measured and tuned on; HELD_BACK was written at the same time, before any change, and is never edited
# while optimising: the benchmark reports both, so a gain that only fits KINDS shows.
KIND_NAMES = {
    "filter20": "a simple filter returning 20 rows",
    "one_wide_row": "one row, every column (SELECT * of one series found by a subquery)",
    "distinct3": "a whole-table aggregate with three COUNT(DISTINCT ...)",
    "patients_by_collection": "a group-by with COUNT(DISTINCT PatientID) over collections",
    "group_filtered": "a group-by of one filtered column",
    "sum_by_license": "a sum by license",
}
KINDS: dict[str, list[str]] = {
    "filter20": [
        "SELECT SeriesInstanceUID, PatientID, Modality FROM index WHERE collection_id = 'nlst' LIMIT 20",
        "SELECT PatientID, StudyDate, SeriesDescription FROM index "
        "WHERE Modality = 'MR' AND BodyPartExamined = 'BRAIN' LIMIT 20",
        "SELECT SeriesInstanceUID, series_size_MB FROM index "
        "WHERE Manufacturer ILIKE 'GE%' AND Modality = 'CT' LIMIT 20",
    ],
    "one_wide_row": [
        "SELECT * FROM index WHERE SeriesInstanceUID = "
        "(SELECT max(SeriesInstanceUID) FROM index WHERE collection_id = 'tcga_luad')",
        "SELECT * FROM index WHERE SeriesInstanceUID = "
        "(SELECT SeriesInstanceUID FROM index WHERE Modality = 'SEG' ORDER BY series_size_MB DESC LIMIT 1)",
        "SELECT * FROM index WHERE SeriesInstanceUID IN "
        "(SELECT min(SeriesInstanceUID) FROM index WHERE PatientID = 'TCGA-17-Z011')",
    ],
    "distinct3": [
        "SELECT count(DISTINCT collection_id), count(DISTINCT PatientID), count(DISTINCT StudyInstanceUID) "
        "FROM index",
        "SELECT count(DISTINCT Modality) AS modalities, count(DISTINCT Manufacturer) AS makers, "
        "count(DISTINCT PatientID) AS patients FROM index",
        "SELECT count(DISTINCT BodyPartExamined), count(DISTINCT SeriesDescription), "
        "count(DISTINCT StudyInstanceUID) FROM index",
    ],
    "patients_by_collection": [
        "SELECT collection_id, count(DISTINCT PatientID) AS patients FROM index "
        "GROUP BY collection_id ORDER BY patients DESC",
        "SELECT collection_id, count(DISTINCT PatientID) AS patients, count(*) AS series FROM index "
        "WHERE Modality = 'CT' GROUP BY collection_id ORDER BY patients DESC",
        "SELECT collection_id, Modality, count(DISTINCT PatientID) AS patients FROM index "
        "GROUP BY ALL ORDER BY patients DESC LIMIT 50",
    ],
    "group_filtered": [
        "SELECT Modality, count(*) AS n FROM index WHERE collection_id = 'nlst' GROUP BY Modality",
        "SELECT BodyPartExamined, count(*) AS n FROM index WHERE Modality = 'CT' "
        "GROUP BY BodyPartExamined ORDER BY n DESC LIMIT 30",
        "SELECT Manufacturer, count(*) AS n FROM index WHERE Modality = 'MR' GROUP BY Manufacturer "
        "ORDER BY n DESC",
    ],
    "sum_by_license": [
        "SELECT license_short_name, round(sum(series_size_MB) / 1024, 1) AS gb FROM index "
        "GROUP BY license_short_name ORDER BY gb DESC",
        "SELECT license_short_name, sum(instanceCount) AS instances FROM index WHERE Modality = 'CT' "
        "GROUP BY license_short_name",
        "SELECT license_short_name, count(*) AS series, sum(series_size_MB) AS mb FROM index "
        "WHERE collection_id LIKE 'tcga%' GROUP BY license_short_name",
    ],
}
HELD_BACK: dict[str, list[str]] = {
    "filter20": [
        "SELECT collection_id, SeriesInstanceUID, instanceCount FROM index WHERE Modality = 'PT' LIMIT 20",
        "SELECT PatientID, SeriesDescription FROM index WHERE collection_id = 'tcga_brca' "
        "AND Modality = 'MR' LIMIT 20",
    ],
    "one_wide_row": [
        "SELECT * FROM index WHERE SeriesInstanceUID = "
        "(SELECT min(SeriesInstanceUID) FROM index WHERE Modality = 'SM')",
        "SELECT * FROM collections_index WHERE collection_id = "
        "(SELECT collection_id FROM index GROUP BY collection_id ORDER BY count(*) DESC LIMIT 1)",
    ],
    "distinct3": [
        "SELECT count(DISTINCT PatientID) AS p, count(DISTINCT StudyInstanceUID) AS s, "
        "count(DISTINCT ManufacturerModelName) AS m FROM index",
        "SELECT count(DISTINCT license_short_name), count(DISTINCT collection_id), "
        "count(DISTINCT SeriesInstanceUID) FROM index",
    ],
    "patients_by_collection": [
        "SELECT collection_id, count(DISTINCT PatientID) AS n FROM index WHERE Modality = 'MR' "
        "GROUP BY collection_id ORDER BY n DESC",
        "SELECT collection_id, count(DISTINCT PatientID) AS patients, sum(series_size_MB) AS mb FROM index "
        "GROUP BY collection_id ORDER BY mb DESC",
    ],
    "group_filtered": [
        "SELECT PatientSex, count(*) AS n FROM index WHERE collection_id = 'tcga_luad' GROUP BY PatientSex",
        "SELECT Modality, count(*) AS n FROM index WHERE BodyPartExamined = 'BREAST' GROUP BY Modality "
        "ORDER BY n DESC",
    ],
    "sum_by_license": [
        "SELECT license_short_name, sum(series_size_MB) AS mb FROM index WHERE Modality = 'SM' "
        "GROUP BY license_short_name ORDER BY mb DESC",
        "SELECT license_short_name, count(DISTINCT collection_id) AS collections, sum(instanceCount) "
        "AS instances FROM index GROUP BY license_short_name",
    ],
}
