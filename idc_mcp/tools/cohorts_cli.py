"""`idc-mcp cohort …`: saved cohorts at a terminal (list, show, save, compare, import, whats-new).

The same plain functions as the tools (`tools/cohorts.py`); replies are printed as JSON on stdout,
errors as one line on stderr. `idc-mcp download --cohort NAME` reproduces a cohort's files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import BaseModel

from idc_mcp.cohorts.format import CohortError
from idc_mcp.files import PathRefused
from idc_mcp.tools.selection import SelectionError
from idc_mcp.tools.selection_cli import add_selection_flags, selection_from


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "cohort",
        help="save, list, show, compare and import cohorts (saved, shareable lists of series)",
        description="Cohorts are files in <download root>/cohorts/: each series pinned to the version it "
        "was saved at. Share the file; `idc-mcp download --cohort NAME` reproduces the cohort.",
    )
    p.add_argument("--download-root", default=argparse.SUPPRESS, help="overrides IDC_MCP_DOWNLOAD_ROOT")
    actions = p.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the saved cohorts").set_defaults(func=_list)
    show = actions.add_parser("show", help="print a cohort file (checked)")
    show.add_argument("name", help="the cohort's name")
    show.set_defaults(func=_show)
    save = actions.add_parser("save", help="save a selection as a cohort")
    save.add_argument("name", help="a name for the cohort (letters, digits, _ and -)")
    save.add_argument("--description", default="", help="what the cohort is")
    save.add_argument("--overwrite", action="store_true", help="replace a cohort of that name")
    add_selection_flags(save)
    save.set_defaults(func=_save)
    compare = actions.add_parser("compare", help="compare a cohort with the current IDC release")
    compare.add_argument("name", help="the cohort's name")
    compare.set_defaults(func=_compare)
    imported = actions.add_parser(
        "import", help="save an IDC portal export (s5cmd manifest, CSV or JSON) as a cohort"
    )
    imported.add_argument("name", help="a name for the cohort (letters, digits, _ and -)")
    imported.add_argument("file", help="the export file (any path: you are at your own terminal)")
    imported.add_argument("--description", default="", help="what the cohort is")
    imported.add_argument("--overwrite", action="store_true", help="replace a cohort of that name")
    imported.set_defaults(func=_import)
    new = actions.add_parser("whats-new", help="series of a selection added or revised after a release")
    new.add_argument("since_release", type=int, help="an IDC release number, e.g. 20")
    add_selection_flags(new)
    new.set_defaults(func=_whats_new)


def _run(args: argparse.Namespace, work) -> int:  # type: ignore[no-untyped-def]
    from idc_mcp.catalog.database import Catalog

    settings = args.settings  # made once by the command line from the environment and its flags
    catalog = Catalog(settings)
    try:
        result = work(catalog, settings.download_root)
    except (CohortError, SelectionError, PathRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        catalog.close()
    # A reply as JSON; `show` prints the cohort file's own text (it ends with a newline).
    print(result.model_dump_json(indent=2) if isinstance(result, BaseModel) else result.rstrip("\n"))
    return 0


def _list(args: argparse.Namespace) -> int:
    from idc_mcp.tools.cohorts import list_cohorts

    return _run(args, lambda catalog, root: list_cohorts(root))


def _show(args: argparse.Namespace) -> int:
    from idc_mcp.cohorts.format import to_text
    from idc_mcp.cohorts.store import load

    return _run(args, lambda catalog, root: to_text(load(root, args.name)))


def _save(args: argparse.Namespace) -> int:
    from idc_mcp.tools.cohorts import save_cohort

    return _run(
        args,
        lambda catalog, root: save_cohort(
            catalog, root, args.name, args.description, selection_from(args), args.overwrite
        ),
    )


def _compare(args: argparse.Namespace) -> int:
    from idc_mcp.tools.cohorts import compare_cohort

    return _run(args, lambda catalog, root: compare_cohort(catalog, root, args.name))


def _import(args: argparse.Namespace) -> int:
    from idc_mcp.cohorts.store import read_text
    from idc_mcp.tools.cohorts import import_cohort

    path = Path(args.file).expanduser()

    def work(catalog, root):  # type: ignore[no-untyped-def]
        text = read_text(path, str(path))
        return import_cohort(catalog, root, args.name, args.description, text, path.name, args.overwrite)

    return _run(args, work)


def _whats_new(args: argparse.Namespace) -> int:
    from idc_mcp.tools.cohorts import whats_new

    return _run(args, lambda catalog, root: whats_new(catalog, selection_from(args), args.since_release))
