"""A real BigQuery API server for the tests: bqemulator (REST API backed by DuckDB) on a loopback port.

The emulator lives in its own virtual environment (it pins duckdb 1.5.5; `.ci/bqemulator-venv.sh`
creates it) named by IDC_MCP_TEST_BQEMULATOR (the path of its `bqemulator` script). It starts with HOME
pointing at a temporary folder that holds DuckDB's spatial extension from the duckdb-extension-spatial
wheel, so it never downloads anything and never touches the user's home. Without the variable the
tests that need it are skipped, except in CI (CI=true), where a missing emulator is a failure.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ENV_VAR = "IDC_MCP_TEST_BQEMULATOR"
DATA_PROJECT = "bigquery-public-data"
START_TIMEOUT_S = 90.0


def emulator_executable() -> Path:
    """The bqemulator script to use, or skip (fail in CI) with the reason and the fix."""
    value = os.environ.get(ENV_VAR, "").strip()
    path = Path(value) if value else None
    if path is not None and path.is_file() and os.access(path, os.X_OK):
        return path.absolute()  # the emulator starts in a temp folder: a relative path would miss
    reason = (
        f"BigQuery emulator not available: set {ENV_VAR} to the bqemulator script of a virtual "
        "environment made by `.ci/bqemulator-venv.sh <venv>` (e.g. <venv>/bin/bqemulator)"
        + (f"; {value!r} is not an executable file" if value else "")
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (CI must run these tests)", pytrace=False)
    pytest.skip(reason)


def _spatial_extension(executable: Path) -> tuple[str, Path]:
    """(DuckDB version dir such as 'v1.5.5', path of spatial.duckdb_extension) from the emulator's venv."""
    venv = executable.resolve().parent.parent
    found = sorted(
        venv.glob("lib/python*/site-packages/duckdb_extension_spatial/extensions/v*/spatial.duckdb_extension")
    )
    if not found:
        pytest.fail(
            f"duckdb-extension-spatial is not installed in {venv}; rerun .ci/bqemulator-venv.sh",
            pytrace=False,
        )
    return found[-1].parent.name, found[-1]


def _duckdb_platform() -> str:
    machine = platform.machine().lower()
    return "linux_arm64" if machine in ("aarch64", "arm64") else "linux_amd64"


@dataclass
class Emulator:
    process: subprocess.Popen[str]
    home: Path
    port: int | None = None
    log: list[dict] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, method: str, path_part: str) -> list[dict]:
        """Requests the emulator has answered (its access log), by method and a part of the path."""
        with self.changed:
            return [
                e
                for e in self.log
                if e.get("event") == "http.request"
                and e.get("method") == method
                and path_part in e.get("path", "")
            ]

    def answered(self, method: str, path_part: str) -> list[dict]:
        """Like `requests`, once every request answered so far has reached `self.log`.

        The emulator logs a request before its response leaves, but this process reads the log through
        a pipe in its own thread, which a loaded machine delays: a count taken right after a call may
        miss its last requests. A marker request is answered and logged after them; once the reader has
        seen the marker, it has seen them all (one pipe, read in order). Waits for that event, not a time.
        """
        marker = f"/log-barrier/{uuid.uuid4().hex}"
        try:
            urllib.request.urlopen(self.endpoint + marker, timeout=START_TIMEOUT_S).close()
        except urllib.error.HTTPError:
            pass  # 404: answered, and logged
        self.wait_for_request("GET", marker)
        return self.requests(method, path_part)

    def wait_for_request(self, method: str, path_part: str, timeout_s: float = 60.0) -> dict:
        with self.changed:
            self.changed.wait_for(lambda: bool(self.requests(method, path_part)), timeout=timeout_s)
        found = self.requests(method, path_part)
        assert found, f"the emulator never answered {method} ...{path_part}"
        return found[0]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                event = {"event": "text", "text": line.rstrip()[:500]}
            with self.changed:
                self.log.append(event)
                if event.get("event") == "rest.listen":
                    self.port = int(event["port"])
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        shutil.rmtree(self.home, ignore_errors=True)


def start_emulator(executable: Path, home: Path) -> Emulator:
    """Start bqemulator on free loopback ports; the REST port is read from its `rest.listen` log event."""
    version, extension = _spatial_extension(executable)
    target = home / ".duckdb" / "extensions" / version / _duckdb_platform()
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(extension, target / extension.name)
    env = {
        **os.environ,
        "HOME": str(home),
        "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",  # the avro extension would be downloaded
        "BQEMU_TRACING_ENABLED": "false",
    }
    process = subprocess.Popen(
        [
            str(executable),
            "start",
            "--rest-port",
            "0",
            "--grpc-port",
            "0",
            "--project",
            DATA_PROJECT,
            "--log-format",
            "json",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=home,
    )
    emulator = Emulator(process=process, home=home)
    threading.Thread(target=emulator._read, name="bqemulator-log", daemon=True).start()
    with emulator.changed:
        emulator.changed.wait_for(
            lambda: emulator.port is not None or process.poll() is not None, timeout=START_TIMEOUT_S
        )
    if emulator.port is None:
        tail = [e.get("text") or e.get("event", "") for e in emulator.log[-10:]]
        emulator.stop()
        pytest.fail(f"bqemulator did not start (exit code {process.poll()}); last log events: {tail}")
    return emulator
