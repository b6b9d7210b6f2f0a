"""Child processes held to a deadline and a memory cap: the machinery the query worker
(`catalog.executor` / `catalog.worker`) and the preview worker (`preview.runner` / `preview.worker`) share.

The parent starts `python -m <module> FD` with one end of a socket pair (FD) and its start-up message
pickled on stdin; it measures the child's resident memory from /proc and kills it when a bound is
breached. The child caps its own address space once started (a single allocation too large to be
sampled in time fails inside it) and exits when its parent is gone.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


class SpawnFailed(OSError):
    """The child could not be started or given its start-up message."""


def spawn(
    module: str, start: dict[str, Any], extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, Connection]:  # type: ignore[type-arg]
    """Start `python -m module FD` with this process's environment (plus `extra_env`), hand it `start` on
    stdin, and return it with our end of its socket."""
    ours, theirs = socket.socketpair()
    child_env = {**os.environ, **(extra_env or {})}
    # glibc gives each thread a 64 MiB malloc arena: under an address-space cap, keep them few.
    child_env.setdefault("MALLOC_ARENA_MAX", "2")
    # The child imports this very copy of idc_mcp, whatever the working folder.
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, (PACKAGE_PARENT, child_env.get("PYTHONPATH"))))
    try:
        popen = subprocess.Popen(
            [sys.executable, "-m", module, str(theirs.fileno())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,  # stdout may be the MCP channel: a child never writes to it
            env=child_env,
            pass_fds=(theirs.fileno(),),
        )
    except OSError as exc:
        ours.close()
        raise SpawnFailed(str(exc)) from exc
    finally:
        theirs.close()  # the child holds it now: its exit shows here as end of file
    conn = Connection(ours.detach())
    assert popen.stdin is not None
    try:
        pickle.dump(start, popen.stdin)
        popen.stdin.close()
    except OSError as exc:
        kill(popen)
        conn.close()
        raise SpawnFailed(str(exc)) from exc
    return popen, conn


def kill(popen: subprocess.Popen, wait_s: float = 10) -> None:  # type: ignore[type-arg]
    """SIGKILL the child (if it still runs) and reap it."""
    if popen.poll() is None:
        popen.kill()
    try:
        popen.wait(wait_s)
    except subprocess.TimeoutExpired:  # pragma: no cover - the OS did not reap a killed child
        pass


def page_size() -> int:
    return int(os.sysconf("SC_PAGE_SIZE")) if hasattr(os, "sysconf") else 4096


def resident_bytes(statm: Path, page: int) -> int:
    """Resident memory of a process from its /proc/<pid>/statm (0 where there is none: other systems)."""
    try:
        return int(statm.read_bytes().split()[1]) * page
    except (OSError, ValueError, IndexError):
        return 0


def current_rss() -> int:
    """This process's resident memory in bytes (Linux /proc; 0 where unknown)."""
    return resident_bytes(Path("/proc/self/statm"), page_size())


def limit_address_space(allowance_bytes: int) -> None:
    """Cap this process's virtual memory at what it maps now plus `allowance_bytes`.

    An allocation beyond it fails (a MemoryError in Python, an out-of-memory error in DuckDB): the
    process reports it and is replaced. Resident memory is at most the address space, so the process
    can never hold more than its size at start (libraries, thread stacks) plus the allowance.
    """
    if allowance_bytes <= 0:
        return
    try:
        import resource
    except ImportError:  # not on this platform: the parent's deadline and memory watch still hold
        return
    try:
        with open("/proc/self/statm", "rb") as statm:
            mapped = int(statm.read().split()[0]) * page_size()
    except (OSError, ValueError, IndexError):
        mapped = 256 * 2**20  # what a worker maps once started, measured on Linux
    limit_bytes = mapped + allowance_bytes
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit_bytes = min(limit_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, hard))


def exit_with_parent() -> None:
    """Leave when the parent is gone, whatever this process is doing."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
