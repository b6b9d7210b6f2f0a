"""The preview worker: a child process that makes one preview and exits.

Started by `preview.runner` as `python -m idc_mcp.preview.worker FD` (FD: its end of a socket pair),
with the request on stdin. It loads the imaging libraries, caps its own address space, makes the
picture (`service.render_series`) and sends it back; to look up a series a SEG refers to, it asks the
server, which holds the catalog. Whatever a file makes it do, it costs only this process: the server
kills it at its deadline, above its memory cap, or when the call is cancelled.
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

    limit_address_space(start["address_space_bytes"])

    def lookup(uid: str):  # type: ignore[no-untyped-def]
        channel.send(("lookup", uid))
        return channel.recv()

    job = start["job"]
    try:
        data, mime, info = render_series(
            job["row"], lookup, job["endpoint"], job["kind"], job["window"], job["slices"]
        )
        reply: tuple[Any, ...] = ("done", data, mime, info)
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


if __name__ == "__main__":
    sys.exit(main())
