"""stdio on the event loop's pipe transports (serve/stdio_pipes.py): the wire stays pure, input that is
not a pipe falls back to the SDK's threads, and a line too long is refused without ending the session."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from idc_mcp.serve import stdio_pipes
from tests.mcp_wire import INITIALIZE

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120


def test_while_served_nothing_but_the_protocol_reaches_stdout_and_fds_come_back() -> None:
    # The attack: a library, a child process or a stray print writing to fd 1 would corrupt the
    # JSON-RPC stream. While the wire is claimed, fd 1 is stderr and fd 0 reads nothing.
    script = textwrap.dedent(
        """
        import os, subprocess, sys
        from idc_mcp.serve import stdio_pipes
        wire = stdio_pipes.claim()
        assert wire is not None
        print("stray print", flush=True)
        os.write(1, b"stray write\\n")
        subprocess.run([sys.executable, "-c", "print('stray child')"], check=True)
        assert os.read(0, 10) == b""  # fd 0 is the null device: the request is not taken from the wire
        assert os.read(wire.read_fd, 100) == b"request\\n"
        os.write(wire.write_fd, b'{"jsonrpc": "2.0"}\\n')
        wire.release()
        os.write(1, b"after\\n")  # fd 1 is stdout again
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input="request\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ['{"jsonrpc": "2.0"}', "after"]
    for stray in ("stray print", "stray write", "stray child"):
        assert stray in done.stderr


def test_a_regular_file_is_not_claimed_and_the_server_still_answers(tmp_path: Path) -> None:
    # `idc-mcp < requests.jsonl > replies.jsonl`: files cannot be event-loop transports; the SDK's
    # own stdio path serves them.
    requests = tmp_path / "requests.jsonl"
    requests.write_text(
        "".join(
            json.dumps(m) + "\n"
            for m in [INITIALIZE, {"jsonrpc": "2.0", "method": "notifications/initialized"}]
        )
    )
    replies = tmp_path / "replies.jsonl"
    with requests.open() as stdin, replies.open("w") as stdout:
        done = subprocess.run(
            [sys.executable, "-m", "idc_mcp"],
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=TIMEOUT_S,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    by_id = {r["id"]: r for r in map(json.loads, replies.read_text().splitlines()) if "id" in r}
    assert by_id[1]["result"]["serverInfo"]["name"] == "idc-mcp"
    with requests.open() as regular:
        assert not stdio_pipes._event_loop_capable(regular.fileno())


def test_a_line_longer_than_the_limit_is_answered_as_unreadable_and_the_next_line_is_read() -> None:
    async def read_lines() -> list[str]:
        reader = asyncio.StreamReader(limit=64)
        reader.feed_data(b"x" * 200 + b"\n" + b'{"ok": 1}\n')
        reader.feed_eof()
        return [line async for line in stdio_pipes._Lines(reader)]

    lines = asyncio.run(read_lines())
    assert lines == ["{too long}\n", '{"ok": 1}\n']
    try:
        json.loads(lines[0])
    except json.JSONDecodeError:
        pass
    else:
        raise AssertionError("the stand-in for a too-long line must fail to parse, so the SDK says so")
