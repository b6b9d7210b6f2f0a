"""The preview worker: a child process that makes one preview and exits.

Started by `preview.runner` as `python -m idc_mcp.preview.worker FD` (FD: its end of a socket pair),
ahead of need. It loads the imaging libraries, caps its own address space, says it is ready, waits for
its one request, makes the picture (`service.render_series`) and sends it back; to look up a series a
SEG refers to, it asks the server, which holds the catalog. Whatever a file makes it do, it costs only
this process: the server kills it at its deadline, above its memory cap, or when the call is cancelled.
"""

from __future__ import annotations

import logging
import pickle
import sys
from multiprocessing.connection import Connection
from typing import Any

from idc_mcp.child_process import exit_with_parent, limit_address_space

log = logging.getLogger("idc_mcp.preview.worker")


def main() -> int:
    exit_with_parent()
    start: dict[str, Any] = pickle.load(sys.stdin.buffer)
    logging.basicConfig(level=start.get("log_level", "WARNING"), stream=sys.stderr)
    channel = Connection(int(sys.argv[1]))
    # Imported before the cap: the libraries are ours; what a file makes us allocate is bounded.
    from idc_mcp.preview.errors import PreviewError
    from idc_mcp.preview.service import render_series

    _warm(start.get("endpoint"))
    limit_address_space(start["address_space_bytes"])
    try:
        channel.send(("ready",))
        job = channel.recv()  # started ahead of need: the job comes when a preview is asked for
    except (EOFError, OSError):
        return 0  # the server is gone (or stopped its spare worker)

    def lookup(uid: str):  # type: ignore[no-untyped-def]
        channel.send(("lookup", uid))
        return channel.recv()

    from idc_mcp.preview import headers

    try:
        if job.get("stacks"):  # the series' slices as an earlier worker sorted them (`headers.known_stacks`)
            headers.remember_stacks(pickle.loads(job["stacks"]))
        data, mime, info = render_series(
            job["row"], lookup, job["endpoint"], job["kind"], job["window"], job["slices"], at=job.get("at")
        )
        # Handed back as bytes: the server keeps them for the next worker and never unpickles them itself
        # (it does not load numpy or pydicom).
        stacks = headers.known_stacks()
        reply: tuple[Any, ...] = ("done", data, mime, info, pickle.dumps(stacks) if stacks else None)
    except PreviewError as exc:
        reply = ("refused", str(exc))
    except MemoryError:
        reply = ("memory", "")
    except Exception as exc:  # noqa: BLE001 - reported to the server, which raises it as an error
        log.exception("the preview failed in its worker")
        reply = ("failed", f"{type(exc).__name__}: {exc}")
    try:
        channel.send(reply)
    except MemoryError:
        channel.send(("memory", ""))
    except (OSError, ValueError):
        return 1  # the server is gone
    return 0


def _warm(endpoint: str | None) -> None:
    """Do now, while no preview waits, what the first one would: build the S3 client (botocore loads
    its service model) and load the pixel decoders."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless

    from idc_mcp.preview.remote import Store

    if endpoint:
        Store.open(endpoint)
    for syntax in (JPEGBaseline8Bit, JPEG2000Lossless, RLELossless):
        try:
            get_decoder(syntax).available_plugins  # noqa: B018 - imports the plugins
        except Exception:  # noqa: BLE001 - a missing plugin is reported when a preview needs it
            pass


if __name__ == "__main__":
    sys.exit(main())
