"""The selection as command-line flags: declared once for every command that takes a selection
(`download`, `prepare`, `cohort save`, `cohort whats-new`), the same arguments the selection tools take."""

from __future__ import annotations

import argparse

from idc_mcp.tools.selection import Selection


def add_selection_flags(parser: argparse.ArgumentParser, cohort: bool = True) -> None:
    parser.add_argument("--collection-ids", nargs="+", metavar="ID", help="collection_id values, e.g. nlst")
    parser.add_argument("--patient-ids", nargs="+", metavar="ID", help="PatientID values")
    parser.add_argument("--study-uids", nargs="+", metavar="UID", help="StudyInstanceUID values")
    parser.add_argument("--series-uids", nargs="+", metavar="UID", help="SeriesInstanceUID values")
    parser.add_argument("--sql", help="a read-only SELECT returning a SeriesInstanceUID column")
    parser.add_argument(
        "--analysis-results",
        choices=["include", "exclude", "only"],
        default="include",
        help="series derived by analyses (segmentations, annotations): include them (default), exclude "
        "them or take only them",
    )
    if cohort:
        parser.add_argument(
            "--cohort", metavar="NAME", help="a saved cohort (alone): each member at its saved version"
        )


def selection_from(args: argparse.Namespace) -> Selection:
    """The Selection the flags of `add_selection_flags` give."""
    return Selection(
        args.collection_ids,
        args.patient_ids,
        args.study_uids,
        args.series_uids,
        args.sql,
        args.analysis_results,
        getattr(args, "cohort", None),
    )
