"""MCP over stdio on the event loop's own pipe transports: no thread hop per line read or written.

The SDK's `stdio_server()` reads and writes through `anyio.wrap_file`: each line read, each write and each
flush is a call handed to a worker thread and back. Measured over a real pipe with a trivial tool, that
costs 0.25-0.4 ms of every call (issue 26; benchmarks/bench_call_stages.py --stdio). Here stdin and stdout
are asyncio pipe transports (non-blocking, flow-controlled), handed to the same `stdio_server()` as its
explicit streams, so the protocol handling is the SDK's own.

As the SDK does when it owns the standard streams, the wire moves to private descriptors while the
server runs: fd 0 reads the null device and fd 1 points at stderr, so a child process, a library or a
stray print can never write into the protocol. Both are put back when the server stops.

Only pipes and sockets are served this way (what an MCP client gives its server): with stdin or stdout a
terminal (a pipe transport would leave it non-blocking for the shell), a regular file, or on Windows,
`claim()` answers None and the caller keeps the SDK's threads.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

# A longer request line is refused (answered as a parse error) rather than held: the SDK has no bound.
MAX_LINE_BYTES = 64 * 2**20


@dataclass
class Wire:
    """The protocol's private copies of stdin and stdout, while fd 0 and fd 1 are diverted."""

    read_fd: int
    write_fd: int
    saved_stdin: int
    saved_stdout: int

    def release(self) -> None:
        """Point fd 0 and fd 1 back where they were, blocking as they came, and close the private copies."""
        for fd in (self.read_fd, self.write_fd):
            try:
                os.set_blocking(fd, True)  # the event loop made them non-blocking
            except OSError:
                pass
        for saved, fd in ((self.saved_stdin, 0), (self.saved_stdout, 1)):
            try:
                os.dup2(saved, fd)
            except OSError:
                pass
        for fd in (self.read_fd, self.write_fd, self.saved_stdin, self.saved_stdout):
            try:
                os.close(fd)
            except OSError:
                pass


def _event_loop_capable(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def claim() -> Wire | None:
    """Move the wire to private descriptors and divert fd 0 and fd 1; None when stdio cannot be served
    on the event loop (not a pipe or a socket; Windows): then nothing was changed."""
    if sys.platform == "win32" or not (_event_loop_capable(0) and _event_loop_capable(1)):
        return None
    sys.stdout.flush()
    # os.dup gives descriptors that child processes do not inherit.
    wire = Wire(os.dup(0), os.dup(1), os.dup(0), os.dup(1))
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
        os.dup2(2, 1)
    finally:
        os.close(null)
    return wire


class _Lines:
    """stdin as the SDK's stdio_server iterates it: text lines, ending at end of input."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        try:
            line = await self._reader.readline()
        except ValueError:  # longer than MAX_LINE_BYTES: asyncio dropped it; the SDK answers a parse error
            return "{too long}\n"
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


class _Out:
    """stdout as the SDK's stdio_server writes it: a write, then a flush that waits for the pipe."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._writer.drain()


@asynccontextmanager
async def streams(wire: Wire) -> AsyncIterator[tuple[Any, Any]]:
    """(stdin, stdout) for `stdio_server(stdin, stdout)`, as event-loop transports over the wire."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    read_pipe = os.fdopen(wire.read_fd, "rb", buffering=0, closefd=False)
    write_pipe = os.fdopen(wire.write_fd, "wb", buffering=0, closefd=False)
    read_transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), read_pipe)
    write_transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, write_pipe)
    writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
    try:
        yield _Lines(reader), _Out(writer)
    finally:
        read_transport.close()
        write_transport.close()
