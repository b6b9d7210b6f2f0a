#!/usr/bin/env bash
# Create (or reuse) the BigQuery emulator's own virtual environment from pinned versions and print the
# path of its bqemulator script. The tests find it through IDC_MCP_TEST_BQEMULATOR and start and stop
# the emulator themselves (tests/bqemulator.py). Usage: .ci/bqemulator-venv.sh VENV_DIR
set -euo pipefail
venv="${1:?usage: .ci/bqemulator-venv.sh VENV_DIR}"
here="$(cd "$(dirname "$0")" && pwd)"
requirements="$here/bqemulator-requirements.txt"
# Its own pins, not the project's (.ci/run exports PIP_CONSTRAINT with the project's duckdb).
unset PIP_CONSTRAINT
if [ ! -x "$venv/bin/bqemulator" ] || ! cmp -s "$requirements" "$venv/.idc-mcp-requirements.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet -r "$requirements"
  cp "$requirements" "$venv/.idc-mcp-requirements.txt"
fi
"$venv/bin/bqemulator" --version >/dev/null
echo "$venv/bin/bqemulator"
