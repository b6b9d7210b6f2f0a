"""`idc-mcp prepare …`: prepare_dataset for people at a terminal, with a progress bar on stderr."""

from __future__ import annotations

import argparse
import sys
import threading
from functools import partial
from typing import TYPE_CHECKING

from idc_mcp.errors import AssistantError
from idc_mcp.prepare.errors import PrepareCancelled
from idc_mcp.tools.selection_cli import add_selection_flags, selection_from
from idc_mcp.tools.terminal_job import run_job

if TYPE_CHECKING:
    from idc_mcp.prepare.engine import PrepareCounter


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "prepare",
        help="turn a selection into NIfTI volumes, label maps, measurement tables and a training layout",
        description="Download what is missing, convert (dcm2niix, highdicom, scikit-image), lay out for "
        "training and write a dataset card. Rerunning skips converted series. Prints the result as JSON.",
    )
    add_selection_flags(p)
    p.add_argument(
        "--layout",
        choices=["plain", "nnunet", "monai"],
        default="plain",
        help="plain: collection/patient/study folders (default); nnunet: nnU-Net v2 imagesTr/labelsTr; "
        "monai: a datalist JSON",
    )
    p.add_argument("--output-dir", help="folder inside the download root (default: prepared)")
    p.add_argument("--commercial", action="store_true", help="refuse series not licensed for commercial use")
    p.add_argument(
        "--split",
        nargs=3,
        type=float,
        metavar=("TRAIN", "VAL", "TEST"),
        default=[0.7, 0.15, 0.15],
        help="patient-level split ratios (default 0.7 0.15 0.15)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the patient-level split")
    p.add_argument("--dry-run", action="store_true", help="plan and check only; write nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--download-root", default=argparse.SUPPRESS, help="overrides IDC_MCP_DOWNLOAD_ROOT")
    p.add_argument("--s3-endpoint-url", default=argparse.SUPPRESS, help="overrides IDC_MCP_S3_ENDPOINT_URL")
    p.set_defaults(func=run)


def _show_progress(progress: PrepareCounter, finished: threading.Event) -> None:
    from tqdm import tqdm

    with tqdm(total=1000, file=sys.stderr, desc="prepare", bar_format="{l_bar}{bar}| {postfix}") as bar:
        while not finished.wait(0.25):
            done, _, message = progress.snapshot()
            bar.n = done
            bar.set_postfix_str(message, refresh=False)
            bar.refresh()
        bar.n = progress.snapshot()[0]
        bar.refresh()


def run(args: argparse.Namespace) -> int:
    from idc_mcp.catalog.database import Catalog
    from idc_mcp.prepare.engine import PrepareCounter, Request
    from idc_mcp.prepare.service import run_prepare

    settings = args.settings
    selection = selection_from(args)
    request = Request(
        args.layout, args.output_dir, args.commercial, tuple(args.split), args.seed, args.dry_run
    )
    progress, cancel = PrepareCounter(), threading.Event()
    show = None if args.dry_run or args.no_progress else partial(_show_progress, progress)
    try:
        result = run_job(
            lambda: run_prepare(Catalog(settings), settings, selection, request, progress, cancel),
            cancel,
            show,
            "idc-prepare",
            "waiting for the converter to stop…",
        )
    except AssistantError as exc:
        print(f"error: {args.terms(str(exc))}", file=sys.stderr)
        return 130 if isinstance(exc, PrepareCancelled) else 1
    result.next_step = args.terms(result.next_step)  # the command line's words, not the tool's
    print(result.model_dump_json(indent=2))
    return 0
