"""Build the Claude Desktop bundle (.mcpb): stage the package, write the manifest, validate and pack.

    python packaging/build_mcpb.py [--mcpb PATH_TO_MCPB_CLI] [--out dist/]

The bundle uses the manifest's `uv` server type (manifest v0.4): it holds our source and pyproject.toml,
no dependencies; on first start Claude Desktop's uv creates the environment and installs them. The
manifest's tool list is generated from the server itself, and `user_config` asks for the download
folder and an optional S3 endpoint. The real `mcpb` CLI (npm @anthropic-ai/mcpb) validates and packs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGED = ["pyproject.toml", "README.md", "idc_mcp", "skill", "references"]
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")

USER_CONFIG = {
    "download_root": {
        "type": "directory",
        "title": "Download folder",
        "description": "Every file the server writes (DICOM downloads, manifests, license and citation "
        "texts) goes inside this folder, and nowhere else.",
        "required": False,
        "default": "${HOME}/idc-mcp-downloads",
    },
    "s3_endpoint_url": {
        "type": "string",
        "title": "S3 endpoint (optional)",
        "description": "Where DICOM files are downloaded from. Leave empty for IDC's public AWS buckets; "
        "set it only for a mirror.",
        "required": False,
        "default": "",
    },
}


def tool_list() -> list[dict[str, str]]:
    """Name and first docstring line of every tool, from the server itself."""
    sys.path.insert(0, str(REPO))
    from idc_mcp.app import create_server
    from idc_mcp.config import load_settings

    tools = asyncio.run(create_server(load_settings()).list_tools())  # lists only: the catalog is not opened
    return [{"name": t.name, "description": (t.description or "").strip().splitlines()[0]} for t in tools]


def manifest() -> dict[str, object]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {
        "manifest_version": "0.4",
        "name": "idc-mcp",
        "display_name": "NCI Imaging Data Commons",
        "version": project["version"],
        "description": project["description"],
        "long_description": "Search about one million public cancer imaging series (CT, MR, PET, slide "
        "microscopy, segmentations) offline, check licenses, get citations, open images in IDC's web "
        "viewers and download DICOM files into one folder. The first start installs the Python "
        "dependencies (a minute or two) and builds a local catalog.",
        "author": {"name": "idc-mcp contributors"},
        "license": project["license"],
        "keywords": ["imaging", "dicom", "cancer", "radiology", "pathology", "idc"],
        "server": {
            "type": "uv",
            "entry_point": "idc_mcp/__main__.py",
            "mcp_config": {
                "command": "uv",
                "args": ["run", "--directory", "${__dirname}", "idc-mcp"],
                "env": {
                    "IDC_MCP_DOWNLOAD_ROOT": "${user_config.download_root}",
                    "IDC_MCP_S3_ENDPOINT_URL": "${user_config.s3_endpoint_url}",
                },
            },
        },
        "tools": tool_list(),
        "compatibility": {
            "platforms": ["darwin", "win32", "linux"],
            "runtimes": {"python": project["requires-python"]},
        },
        "user_config": USER_CONFIG,
    }


def stage(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in STAGED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=SKIP)
        else:
            shutil.copy2(source, folder / name)
    (folder / "manifest.json").write_text(json.dumps(manifest(), indent=2) + "\n")
    return folder


def build(mcpb: str, out: Path) -> Path:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    out.mkdir(parents=True, exist_ok=True)
    bundle = out / f"idc-mcp-{version}.mcpb"
    with tempfile.TemporaryDirectory() as tmp:
        folder = stage(Path(tmp) / "idc-mcp")
        subprocess.run([mcpb, "validate", str(folder / "manifest.json")], check=True)
        subprocess.run([mcpb, "pack", str(folder), str(bundle)], check=True)
    return bundle


def main() -> int:
    parser = argparse.ArgumentParser(description="Build the Claude Desktop bundle (.mcpb).")
    parser.add_argument("--mcpb", default=shutil.which("mcpb") or "mcpb", help="the mcpb CLI")
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    args = parser.parse_args()
    print(build(args.mcpb, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
