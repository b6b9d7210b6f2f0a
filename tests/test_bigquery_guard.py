# ruff: noqa: E501  (a corpus of SQL statements reads best one statement per line)
"""The BigQuery guard accepts ordinary analytical BigQuery SQL over IDC's datasets, caps the rows by
rewriting LIMIT, and runs only the SQL it regenerates (no emulator needed)."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from idc_mcp.bigquery.guard import BigQueryRejected, TableRef, validate
from idc_mcp.bigquery.names import name_in_error, unknown_column, unknown_column_message
from idc_mcp.bigquery.schema import FieldPath, TableSchema

T = "`bigquery-public-data.idc_current.dicom_all`"
SEG = "`bigquery-public-data.idc_current.segmentations`"
QM = "`bigquery-public-data.idc_current.quantitative_measurements`"

ORDINARY = [
    f"SELECT SeriesInstanceUID FROM {T}",
    f"SELECT collection_id, COUNT(DISTINCT SeriesInstanceUID) AS series FROM {T} GROUP BY collection_id",
    f"SELECT Modality, COUNT(*) AS n FROM {T} WHERE collection_id = 'nlst' GROUP BY 1 ORDER BY 2 DESC",
    f"SELECT SeriesInstanceUID, ANY_VALUE(SliceThickness) AS st, COUNT(*) AS n FROM {T} GROUP BY 1",
    f"SELECT SeriesInstanceUID FROM {T} WHERE 'ORIGINAL' IN UNNEST(ImageType)",
    f"SELECT d.SeriesInstanceUID, it FROM {T} AS d, UNNEST(d.ImageType) AS it WITH OFFSET AS pos WHERE pos = 0",
    f"SELECT d.SeriesInstanceUID, it FROM {T} AS d, d.ImageType AS it",
    f"SELECT ref.SeriesInstanceUID FROM {T}, UNNEST(ReferencedSeriesSequence) AS ref",
    f"SELECT PixelSpacing[SAFE_OFFSET(0)] AS row_spacing FROM {T}",
    f"SELECT SegmentedPropertyType.CodeMeaning AS structure, COUNT(*) AS n FROM {SEG} GROUP BY 1",
    f"SELECT s.SegmentedPropertyType.CodeValue FROM {SEG} AS s",
    f"SELECT finding.CodeMeaning, Quantity.CodeMeaning, AVG(Value) AS mean FROM {QM} GROUP BY 1, 2",
    f"WITH ct AS (SELECT SeriesInstanceUID FROM {T} WHERE Modality = 'CT') SELECT COUNT(*) AS n FROM ct",
    f"SELECT a.SeriesInstanceUID FROM {T} AS a JOIN {SEG} AS s ON s.segmented_SeriesInstanceUID = a.SeriesInstanceUID",
    f"SELECT collection_id FROM {T} UNION DISTINCT SELECT collection_id FROM `bigquery-public-data.idc_v22.dicom_all`",
    f"SELECT SeriesInstanceUID FROM {T} EXCEPT DISTINCT SELECT SeriesInstanceUID FROM {SEG}",
    f"SELECT SeriesInstanceUID, ROW_NUMBER() OVER (PARTITION BY collection_id ORDER BY SeriesInstanceUID) AS r FROM {T}",
    f"SELECT SeriesInstanceUID FROM {T} QUALIFY ROW_NUMBER() OVER (PARTITION BY StudyInstanceUID ORDER BY SeriesInstanceUID) = 1",
    f"SELECT ARRAY_AGG(DISTINCT Modality IGNORE NULLS ORDER BY Modality) AS modalities FROM {T}",
    f"SELECT STRING_AGG(DISTINCT collection_id, ', ') AS ids FROM {T}",
    f"SELECT APPROX_COUNT_DISTINCT(PatientID) AS patients, APPROX_QUANTILES(instance_size, 4) AS q FROM {T}",
    f"SELECT COUNTIF(SliceThickness < 1.5) AS thin, LOGICAL_OR(Modality = 'MR') AS any_mr FROM {T}",
    f"SELECT SAFE_CAST(PatientAge AS INT64) AS age, SAFE_DIVIDE(instance_size, 1e6) AS mb FROM {T}",
    f"SELECT REGEXP_CONTAINS(SeriesDescription, r'(?i)t1') AS t1, REGEXP_EXTRACT(PatientAge, r'\\d+') AS y FROM {T}",
    f"SELECT LOWER(SeriesDescription) LIKE '%flair%' AS flair, STARTS_WITH(collection_id, 'tcga') AS tcga FROM {T}",
    f"SELECT EXTRACT(YEAR FROM StudyDate) AS y, DATE_TRUNC(StudyDate, MONTH) AS m, FORMAT_DATE('%Y', StudyDate) AS f FROM {T}",
    f"SELECT DATE_DIFF(CURRENT_DATE(), StudyDate, DAY) AS days FROM {T}",
    f"SELECT IF(Modality = 'CT', 'ct', 'other') AS k, IFNULL(BodyPartExamined, '?') AS b, COALESCE(Manufacturer, '') AS m FROM {T}",
    f"SELECT TO_JSON_STRING(STRUCT(collection_id AS c, Modality AS m)) AS j FROM {T}",
    f"SELECT ARRAY_LENGTH(ImageType) AS n, ARRAY_TO_STRING(ImageType, '\\\\') AS t FROM {T}",
    f"SELECT * EXCEPT (gcs_url) FROM {T} WHERE SeriesInstanceUID = '1.2.3'",
    "SELECT column_name, data_type FROM `bigquery-public-data.idc_current.INFORMATION_SCHEMA.COLUMNS` WHERE table_name = 'dicom_all'",
    "SELECT table_name FROM `bigquery-public-data.idc_v22.INFORMATION_SCHEMA.TABLES`",
    "SELECT COUNT(*) AS n FROM `bigquery-public-data.idc_current.dicom_*` WHERE _TABLE_SUFFIX = 'all'",
    f"SELECT SAFE.PARSE_DATE('%Y%m%d', '20200101') AS d, ROUND(AVG(instance_size) / 1e6, 2) AS mb FROM {T}",
    "SELECT x FROM UNNEST(GENERATE_ARRAY(1, 3)) AS x",
    f"SELECT collection_id, ARRAY_AGG(STRUCT(SeriesInstanceUID, Modality) LIMIT 3) AS some FROM {T} GROUP BY 1",
    f"SELECT (SELECT COUNT(*) FROM {SEG}) AS segments, (SELECT COUNT(*) FROM {QM}) AS measurements",
    f"SELECT SeriesInstanceUID FROM {T} TABLESAMPLE SYSTEM (1 PERCENT)",
]


@pytest.mark.parametrize("sql", ORDINARY)
def test_ordinary_bigquery_analytics_pass_and_regenerate_as_valid_bigquery(sql: str):
    validated = validate(sql, max_rows=100)
    reparsed = sqlglot.parse_one(validated.sql, read="bigquery")
    assert isinstance(reparsed, exp.Select | exp.SetOperation)
    assert "LIMIT" in validated.sql


def test_every_idc_table_read_is_recorded_with_its_release():
    validated = validate(ORDINARY[14], 10)
    assert validated.tables == (TableRef("idc_current", "dicom_all"), TableRef("idc_v22", "dicom_all"))
    assert validated.tables[0].full_name == "bigquery-public-data.idc_current.dicom_all"


@pytest.mark.parametrize(
    ("sql", "limit"),
    [
        (f"SELECT Modality FROM {T}", 101),
        (f"SELECT Modality FROM {T} LIMIT 5", 5),
        (f"SELECT Modality FROM {T} LIMIT 100000", 101),
        (f"SELECT Modality FROM {T} LIMIT 100000 OFFSET 10", 101),
        (f"SELECT Modality FROM {T} UNION ALL SELECT Modality FROM {T} LIMIT 9999", 101),
    ],
)
def test_the_row_cap_is_enforced_by_rewriting_limit(sql: str, limit: int):
    tree = sqlglot.parse_one(validate(sql, max_rows=100).sql, read="bigquery")
    assert int(tree.args["limit"].expression.name) == limit


def test_a_limit_inside_a_subquery_does_not_lift_the_outer_cap():
    validated = validate(f"SELECT * FROM (SELECT Modality FROM {T} LIMIT 100000)", max_rows=10)
    assert validated.sql.endswith("LIMIT 11")


def test_comments_never_reach_bigquery():
    # A comment can carry text that a later parser (or a person reading the job history) takes as SQL.
    validated = validate(f"SELECT Modality /* ; DROP TABLE x */ FROM {T} -- trailing\n", max_rows=5)
    assert "/*" not in validated.sql and "--" not in validated.sql and "DROP" not in validated.sql


def test_information_schema_views_lose_the_dotted_alias_bigquery_would_refuse():
    validated = validate(
        "SELECT table_name FROM `bigquery-public-data.idc_current.INFORMATION_SCHEMA.TABLES`", 5
    )
    assert " AS " not in validated.sql


def test_select_star_is_flagged_for_the_cost_advice():
    assert validate(f"SELECT * FROM {T}", 5).selects_star
    assert not validate(f"SELECT Modality FROM {T}", 5).selects_star


def test_refusals_say_what_to_write_instead():
    with pytest.raises(BigQueryRejected, match=r"`bigquery-public-data\.idc_current\.dicom_all`"):
        validate("SELECT Modality FROM dicom_all", 5)
    with pytest.raises(BigQueryRejected, match="would read your billing project"):
        validate("SELECT Modality FROM idc_current.dicom_all", 5)
    with pytest.raises(BigQueryRejected, match="case-sensitive"):
        validate("SELECT 1 FROM `bigquery-public-data.IDC_CURRENT.dicom_all`", 5)
    with pytest.raises(BigQueryRejected, match="clinical_index"):
        validate("SELECT 1 FROM `bigquery-public-data.idc_current_clinical.nlst_prsn`", 5)


# ------------------------------------------------------------------------ names checked before sending
def _schema() -> TableSchema:
    names = (
        "collection_id PatientID PatientAge StudyInstanceUID StudyDate SeriesInstanceUID SOPInstanceUID Modality "
        "BodyPartExamined SeriesDescription Manufacturer SliceThickness ContrastBolusAgent ImageType PixelSpacing "
        "gcs_url instance_size segmented_SeriesInstanceUID SegmentNumber SegmentAlgorithmType SegmentAlgorithmName Value"
    ).split()
    fields = [FieldPath(n, "STRING", "NULLABLE", "") for n in names]
    fields += [
        FieldPath("ReferencedSeriesSequence", "RECORD", "REPEATED", ""),
        FieldPath("ReferencedSeriesSequence.SeriesInstanceUID", "STRING", "NULLABLE", ""),
    ]
    for record in ("SegmentedPropertyType", "finding", "Quantity", "Units"):
        fields += [FieldPath(record, "RECORD", "NULLABLE", "")]
        fields += [
            FieldPath(f"{record}.{leaf}", "STRING", "NULLABLE", "") for leaf in ("CodeMeaning", "CodeValue")
        ]
    return TableSchema(TableRef("idc_current", "dicom_all"), "TABLE", "", 1, 1, tuple(fields))


MORE_VALID = [
    f'SELECT Modality FROM {T} WHERE Modality = "CT" GROUP BY ALL',
    f"SELECT DATE_TRUNC(StudyDate, WEEK(MONDAY)) AS w, DATE_ADD(StudyDate, INTERVAL 1 DAY) AS d FROM {T} ORDER BY w NULLS LAST",
    f"SELECT CAST(SliceThickness AS NUMERIC) AS n, STRUCT<a INT64>(1) AS s, [1, 2, 3] AS arr FROM {T}",
    f"SELECT COUNT(*) AS n FROM {T} WHERE StudyDate BETWEEN DATE '2000-01-01' AND CURRENT_DATE()",
    f"SELECT x.Modality FROM (SELECT Modality FROM {T}) AS x",
    f"SELECT EXTRACT(DAYOFWEEK FROM StudyDate) AS dow, FORMAT('%s-%d', Modality, 3) AS f FROM {T}",
    f"SELECT * FROM {T} WHERE SeriesInstanceUID IN UNNEST(['1.2', '1.3'])",
    f"SELECT CASE WHEN Modality = 'CT' THEN 1 ELSE 0 END AS c FROM {T}",
    f"SELECT Modality, COUNT(*) OVER w AS n FROM {T} WINDOW w AS (PARTITION BY Modality)",
    f"SELECT dicom_all.Modality FROM {T}",
    f"SELECT r.SeriesInstanceUID FROM {T} AS d CROSS JOIN UNNEST(d.ReferencedSeriesSequence) AS r",
    f"SELECT (SELECT ARRAY_AGG(x) FROM UNNEST(ImageType) AS x WHERE x != 'AXIAL') AS kept FROM {T}",
    f"SELECT ImageType[OFFSET(0)] AS first_type FROM {T}",
    f"SELECT ANY_VALUE(Modality HAVING MAX SliceThickness) AS m FROM {T}",
]


@pytest.mark.parametrize("sql", [q for q in ORDINARY + MORE_VALID if "INFORMATION_SCHEMA" not in q])
def test_valid_names_are_never_refused_by_the_name_check(sql: str):
    # The check may only refuse a name that no table read and no part of the query defines.
    assert unknown_column(validate(sql, 10), [_schema()]) is None


@pytest.mark.parametrize(
    ("sql", "unknown"),
    [
        (f"SELECT SliceThicknes FROM {T}", "SliceThicknes"),
        (f"SELECT d.Modalty FROM {T} AS d", "Modalty"),
        (f"SELECT SegmentedPropertyType.CodeMeanin FROM {T}", "CodeMeanin"),
        (f"SELECT Modality FROM {T} WHERE BodyPart = 'CHEST'", "BodyPart"),
    ],
)
def test_a_misspelled_name_is_found_with_the_nearest_real_ones(sql: str, unknown: str):
    found = unknown_column(validate(sql, 10), [_schema()])
    assert found is not None and found[0] == unknown
    message = unknown_column_message(*found, [_schema()])
    assert "Nearest real names" in message and "describe_bigquery_table('idc_current.dicom_all'" in message


@pytest.mark.parametrize(
    ("api_message", "name"),
    [
        ("Unrecognized name: SliceThicknes at [1:8]", "SliceThicknes"),
        ("Name CodeMeanin not found inside SegmentedPropertyType at [1:30]", "CodeMeanin"),
        ("Field name Modalty does not exist in STRUCT<Modality STRING>", "Modalty"),
        ('Binder Error: Referenced column "nosuchcol" not found in FROM clause!', "nosuchcol"),
        ("Syntax error: Unexpected end of script at [1:7]", None),
    ],
)
def test_the_name_in_bigquerys_own_error_is_read_for_hints(api_message: str, name: str | None):
    assert name_in_error(api_message) == name
