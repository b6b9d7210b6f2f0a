"""The first minutes at a terminal: what a new user sees when starting, mistyping and stopping `idc-mcp`.

Each test runs the real command (`python -m idc_mcp`, what the `idc-mcp` script runs) in a subprocess.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import idc_index_data
import pytest

from idc_mcp import __version__
from idc_mcp.serve.tokens import parse_tokens

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "idc_mcp", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=ROOT,
        check=False,
    )


def _no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-2000:]


def test_version_flag() -> None:
    done = _run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"idc-mcp {__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--log-level", "LOUD"], "'LOUD' is not a log level; use one of DEBUG"),
        (["--port", "70000"], "a port is a number from 1 to 65535"),
        (["--max-concurrent", "0"], "at least 1"),
        (["--transport", "sse"], "invalid choice"),
    ],
)
def test_bad_arguments_get_a_usage_message_not_a_traceback(args: list[str], message: str) -> None:
    done = _run(*args)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: idc-mcp") and message in done.stderr
    _no_traceback(done.stderr)


@pytest.mark.slow
def test_stdio_start_line_says_what_is_served_and_end_of_input_stops_cleanly(built_catalog: Path) -> None:
    done = _run("--log-level", "info")  # lower case accepted too
    assert done.returncode == 0
    start = next(line for line in done.stderr.splitlines() if "serving MCP" in line)
    assert "over stdio" in start and f"idc-index-data {idc_index_data.__version__}" in start
    assert "cache " in start and "Ctrl-C" in start
    assert done.stderr.rstrip().endswith("idc-mcp: stopped (end of input)")
    assert done.stdout == ""  # stdout is the MCP channel: nothing but protocol
    assert "catalog ready" in done.stderr or "opening the catalog" in done.stderr  # INFO says what it does
    _no_traceback(done.stderr)


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_stdio_server_stops_on_the_first_ctrl_c(stop: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "idc_mcp"],
        stdin=subprocess.PIPE,  # kept open: the server is waiting for input, as under a terminal
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the start line: the handler is installed by then
        assert "serving MCP over stdio" in line, line
        proc.send_signal(stop)
        _, rest = proc.communicate(timeout=30)  # one signal is enough: no second Ctrl-C needed
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert f"stopped ({stop.name})" in rest
    _no_traceback(rest)


def test_serving_a_network_address_without_tokens_is_refused_before_binding() -> None:
    done = _run("--transport", "streamable-http", "--host", "192.0.2.10")
    assert done.returncode == 2
    assert "refusing to serve 192.0.2.10 without authentication" in done.stderr
    assert "--allow-unauthenticated" in done.stderr and "new-token" in done.stderr
    _no_traceback(done.stderr)


def test_an_unreadable_tokens_file_is_refused(tmp_path: Path) -> None:
    done = _run("--transport", "streamable-http", "--tokens-file", str(tmp_path / "missing"))
    assert done.returncode == 2 and "cannot read the tokens file" in done.stderr
    _no_traceback(done.stderr)


def test_new_token_prints_a_token_and_a_file_line_without_it() -> None:
    done = _run("new-token", "alice")
    assert done.returncode == 0
    token = done.stdout.splitlines()[0].rsplit(" ", 1)[1]
    line = done.stdout.splitlines()[1].split(": ", 1)[1]
    assert token not in line
    (entry,) = parse_tokens([line], "printed")
    assert entry.token_id == "alice"
