"""`idc-mcp download …`: the download tool for people at a terminal, with a progress bar on stderr."""

from __future__ import annotations

import argparse
import sys
import threading
from functools import partial

from idc_mcp.download.engine import DownloadCancelled, DownloadCounter, DownloadError
from idc_mcp.download.plan import DEFAULT_TEMPLATE, TemplateError
from idc_mcp.download.service import run_download
from idc_mcp.files import PathRefused
from idc_mcp.tools.selection import SelectionError
from idc_mcp.tools.selection_cli import add_selection_flags, selection_from
from idc_mcp.tools.terminal_job import run_job


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "download",
        help="download a selection of IDC series into the download root",
        description="Download the DICOM files of the selected series (arguments combine with AND). "
        "Files are verified and written atomically; rerunning resumes. Prints the result as JSON.",
    )
    add_selection_flags(p)
    p.add_argument("--download-dir", help="folder inside the download root (default: the root)")
    p.add_argument(
        "--dir-template",
        help=f"folder layout (default {DEFAULT_TEMPLATE.replace('%', '%%')}; '' for one folder)",
    )
    p.add_argument("--dry-run", action="store_true", help="show the plan and write nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    # Also accepted after the subcommand; SUPPRESS keeps a value given before it.
    p.add_argument("--download-root", default=argparse.SUPPRESS, help="overrides IDC_MCP_DOWNLOAD_ROOT")
    p.add_argument("--s3-endpoint-url", default=argparse.SUPPRESS, help="overrides IDC_MCP_S3_ENDPOINT_URL")
    p.set_defaults(func=run)


def bar_note(message: str) -> str:
    """The progress bar's note: the phase while there are no files counted yet, then the file counts."""
    phase, _, files = message.partition(": ")
    return files or phase


def _show_progress(progress: DownloadCounter, finished: threading.Event) -> None:
    from tqdm import tqdm

    with tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, desc="download") as bar:
        while not finished.wait(0.25):
            done, total, message = progress.snapshot()
            if total:
                bar.total = total
                bar.n = done
            # Before the sizes are known, what it is doing (selecting, listing the files of N series).
            bar.set_postfix_str(bar_note(message), refresh=False)
            bar.refresh()
        done, total, _ = progress.snapshot()
        if total:
            bar.total, bar.n = total, done
            bar.refresh()


def run(args: argparse.Namespace) -> int:
    from idc_mcp.catalog.database import Catalog

    settings = args.settings  # made once by the command line from the environment and its flags
    selection = selection_from(args)
    progress, cancel = DownloadCounter(), threading.Event()
    show = None if args.dry_run or args.no_progress else partial(_show_progress, progress)
    try:
        result = run_job(
            lambda: run_download(
                Catalog(settings),
                settings,
                selection,
                args.download_dir,
                args.dir_template,
                args.dry_run,
                progress,
                cancel,
            ),
            cancel,
            show,
            "idc-download",
            "waiting for transfers to stop…",
        )
    except (SelectionError, DownloadError, TemplateError, PathRefused) as exc:
        print(f"error: {args.terms(str(exc))}", file=sys.stderr)
        return 130 if isinstance(exc, DownloadCancelled) else 1
    result.next_step = args.terms(result.next_step)  # "run ... without --dry-run", not the tool's words
    print(result.model_dump_json(indent=2))
    return 0
