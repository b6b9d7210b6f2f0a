#!/usr/bin/env bash
# Create (or reuse) an environment with nnunetv2 (and torch, CPU) from pinned versions and print its
# Python. tests/test_prepare.py runs nnU-Net's own verify_dataset_integrity on the nnunet layout with it
# (IDC_MCP_TEST_NNUNET_PYTHON). Its own environment: torch is ~200 MB and nothing of idc-mcp needs it.
# Usage: .ci/nnunet-venv.sh VENV_DIR
set -euo pipefail
venv="${1:?usage: .ci/nnunet-venv.sh VENV_DIR}"
here="$(cd "$(dirname "$0")" && pwd)"
requirements="$here/nnunet-requirements.txt"
unset PIP_CONSTRAINT  # its own pins, not the project's
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$venv/.idc-mcp-requirements.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet -r "$requirements"
  cp "$requirements" "$venv/.idc-mcp-requirements.txt"
fi
"$venv/bin/python" -c "import nnunetv2.experiment_planning.verify_dataset_integrity" >/dev/null
echo "$venv/bin/python"
