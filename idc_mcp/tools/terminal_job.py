"""A long command-line job (a download, a dataset preparation): its work in a thread, a progress bar
beside it, Ctrl-C asking the work to stop and waiting until it has."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_job(
    work: Callable[[], T],
    cancel: threading.Event,
    show_progress: Callable[[threading.Event], None] | None,
    name: str,
    cancelling: str,
) -> T:
    """`work()`'s result, or its exception raised here. `show_progress(finished)` draws until the work has
    finished; Ctrl-C sets `cancel`, prints `cancelling` and waits for the work to return."""
    outcome: list[T] = []
    failure: list[BaseException] = []
    finished = threading.Event()

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # raised again in the calling thread
            failure.append(exc)
        finally:
            finished.set()

    worker = threading.Thread(target=run, name=name)
    bar = None
    if show_progress is not None:
        bar = threading.Thread(target=show_progress, args=(finished,), daemon=True)
        bar.start()
    worker.start()
    try:
        while not finished.wait(0.5):
            pass
    except KeyboardInterrupt:
        cancel.set()
        print(f"\ncancelling: {cancelling}", file=sys.stderr)
    worker.join()
    if bar is not None:
        bar.join()
    if failure:
        raise failure[0]
    return outcome[0]
