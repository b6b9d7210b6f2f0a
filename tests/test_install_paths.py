"""The one-step install paths, each checked with the real tool a user runs.

- Claude Code plugin: `claude plugin validate --strict`, then `claude plugin marketplace add` + `install`
  into a throwaway home, and the MCP server started exactly as the installed `.mcp.json` says.
- Claude Desktop bundle: `packaging/build_mcpb.py` (real `mcpb validate` + `mcpb pack`), the bundle
  unpacked and its server started exactly as `manifest.json` says, with the user_config filled in.
- No clone: `uvx --from git+<url> idc-mcp` against a local clone URL.

The uv-based ones install our dependencies from PyPI into uv's cache on their first run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from types import ModuleType

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.git_http import serve_repository
from tests.npm_tools import npm_tool
from tests.test_readme_commands import README, shell_lines

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 600  # a first run downloads the dependencies
COUNT_SQL = "SELECT count(*) AS n FROM index WHERE collection_id = 'rider_pilot'"
PLUGIN = "plugin"  # the plugin's folder: its manifest, .mcp.json, hook, and links to what it ships


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _uv() -> Path:
    uv = Path(sys.executable).parent / "uv"  # from the `test` extra
    return uv if uv.exists() else Path(shutil.which("uv") or "uv")


def _server_env(**extra: str) -> dict[str, str]:
    """The test run's environment (its own catalog cache, see tests/isolation.py), uv on PATH, no Python
    downloads."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = f"{_uv().parent}{os.pathsep}{env.get('PATH', '')}"
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env.setdefault("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv"))
    return {**env, **extra}


def _repository_copy(target: Path) -> Path:
    """The files a clone would have (tracked and new, not ignored), without .venv or caches."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_symlink() or source.is_file():  # the plugin folder's links stay links
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)
    return target


def _repository_url(tmp_path: Path) -> Path:
    """A bare repository holding the files a clone would have (with uncommitted edits): what REPO_URL
    names, once served (tests/git_http.py)."""
    work = _repository_copy(tmp_path / "work")
    git = [
        "git",
        "-c",
        "user.name=test",
        "-c",
        "user.email=test@example.org",
        "-c",
        "init.defaultBranch=main",
    ]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*git, *args], cwd=work, check=True, timeout=120)
    bare = tmp_path / "idc-mcp.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, timeout=120)
    return bare


def _claude(claude: Path, home: Path, *args: str, path: str | None = None, cwd: Path | None = None) -> str:
    """Run the real `claude` as a user with this home (not logged in, no telemetry)."""
    env = dict(os.environ, HOME=str(home), CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
    if path is not None:
        env["PATH"] = path
    done = subprocess.run(
        [str(claude), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd or home,
        check=False,
    )
    assert done.returncode == 0, f"claude {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


async def _answers_as_idc_mcp(command: str, args: list[str], env: dict[str, str]) -> list[str]:
    """Start the server over stdio as a client would; check a query; return the tool names."""
    params = StdioServerParameters(command=command, args=args, env=env, cwd=str(Path.home()))
    with anyio.fail_after(TIMEOUT_S):
        async with Client(params, mode="legacy", read_timeout_seconds=TIMEOUT_S) as client:
            assert client.server_info is not None and client.server_info.name == "idc-mcp"
            tools = sorted(tool.name for tool in (await client.list_tools()).tools)
            result = await client.call_tool("query", {"sql": COUNT_SQL})
            assert not result.is_error, result.content
            assert result.structured_content is not None and result.structured_content["rows"][0]["n"] > 0
            return tools


# ---------------------------------------------------------------- the plugin's skill: one source
def test_plugin_skill_is_the_generated_copy_of_skill_and_references() -> None:
    sync = _module(REPO / "packaging" / "sync_skill.py")
    assert sync.stale_files() == [], "run: python packaging/sync_skill.py"
    assert (REPO / "skills" / sync.skill_name() / "SKILL.md").read_bytes() == (
        REPO / "skill/SKILL.md"
    ).read_bytes()


def test_a_hand_edit_of_the_plugin_copy_is_caught(tmp_path: Path) -> None:
    sync = _module(REPO / "packaging" / "sync_skill.py")
    for folder in ("skill", "references", "skills"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    edited = tmp_path / "skills" / sync.skill_name() / "references" / "sql_cookbook.md"
    edited.write_text(edited.read_text() + "\nedited by hand\n")
    (tmp_path / "skills" / "stray.md").write_text("not generated")
    assert sync.stale_files(tmp_path) == [str(edited.relative_to(tmp_path)), "skills/stray.md"]
    sync.sync(tmp_path)
    assert sync.stale_files(tmp_path) == []


# ---------------------------------------------------------------- Claude Code plugin
def test_plugin_version_is_the_package_version() -> None:
    # One version for the wheel, the plugin and the bundle (build_mcpb.py reads pyproject.toml).
    from idc_mcp import __version__

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    plugin = json.loads((REPO / PLUGIN / ".claude-plugin" / "plugin.json").read_text())
    assert plugin["version"] == project["version"] == __version__


@pytest.mark.parametrize(
    "manifest", [f"{PLUGIN}/.claude-plugin/plugin.json", ".claude-plugin/marketplace.json"]
)
def test_plugin_manifests_pass_claude_plugin_validate_strict(manifest: str) -> None:
    claude = npm_tool("claude")
    done = subprocess.run(
        [str(claude), "plugin", "validate", "--strict", str(REPO / manifest)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation passed" in done.stdout


def test_claude_plugin_validate_does_check_our_skill(tmp_path: Path) -> None:
    # Control: the same plugin with the skill's front matter removed must fail, so a pass above means
    # the validator read our skill and found it valid.
    claude = npm_tool("claude")
    copy = _repository_copy(tmp_path / "plugin")
    skill = next((copy / "skills").glob("*/SKILL.md"))
    skill.write_text(skill.read_text().split("---", 2)[2])
    done = subprocess.run(
        [
            str(claude),
            "plugin",
            "validate",
            "--strict",
            str(copy / PLUGIN / ".claude-plugin" / "plugin.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1 and "frontmatter" in done.stdout


@pytest.mark.slow
@pytest.mark.anyio
async def test_plugin_installed_from_the_repository_url_runs_from_its_own_copy(
    tmp_path: Path, built_catalog: Path
) -> None:
    # The README's `claude plugin marketplace add REPO_URL`, with REPO_URL a git repository served on
    # loopback: Claude Code clones it and copies the plugin into its cache; the server must start from
    # that copy, so it keeps working once the repository has moved or gone.
    claude = npm_tool("claude")
    bare = _repository_url(tmp_path)
    home = tmp_path / "home"
    home.mkdir()  # a user with nothing installed yet
    with serve_repository(bare) as url:
        for line in _plugin_commands("REPO_URL"):
            _claude(claude, home, *[arg.replace("REPO_URL", url) for arg in line[1:]])
    shutil.rmtree(bare)  # the repository moved away
    details = _claude(claude, home, "plugin", "details", "idc-mcp")
    assert re.search(r"Skills \(1\)\s+idc-mcp-imaging", details), details
    assert re.search(r"MCP servers \(1\)\s+idc", details), details

    installed = json.loads((home / ".claude" / "plugins" / "installed_plugins.json").read_text())
    (entry,) = installed["plugins"]["idc-mcp@idc-mcp"]
    root = Path(entry["installPath"])
    assert root.is_relative_to(home / ".claude" / "plugins" / "cache")
    # What Claude Code will start (uvx is not on this PATH, so it cannot connect: only the command counts).
    listed = _claude(claude, home, "mcp", "list", path="/usr/bin:/bin")
    assert f"plugin:idc-mcp:idc: uvx --from {root} idc-mcp" in listed, listed
    # Only the plugin's own files were copied: no tests, benchmarks or development files.
    tracked = subprocess.run(
        ["git", "ls-files", PLUGIN], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    shipped = {Path(name).relative_to(PLUGIN).parts[0] for name in tracked}
    assert {p.name for p in root.iterdir()} - {".in_use"} == shipped  # .in_use: Claude Code's marker
    server = json.loads((root / ".mcp.json").read_text())["mcpServers"]["idc"]
    args = [arg.replace("${CLAUDE_PLUGIN_ROOT}", str(root)) for arg in server["args"]]
    tools = await _answers_as_idc_mcp(server["command"], args, _server_env())
    assert {"query", "download", "check_licenses"} <= set(tools)


def test_plugin_from_a_local_clone_copies_no_virtual_environment_or_caches(tmp_path: Path) -> None:
    # Issue 22: installing from a clone that had been used (.venv, caches) copied 1.1 GB into Claude Code's
    # plugin cache. The plugin is its own folder now, linking only to what it ships.
    claude = npm_tool("claude")
    clone = _repository_copy(tmp_path / "idc-mcp")  # the README's ./idc-mcp, seen from tmp_path
    for junk in (".venv/lib/python3.11/site-packages", "__pycache__", ".pytest_cache", "idc_mcp/__pycache__"):
        (clone / junk).mkdir(parents=True, exist_ok=True)
        (clone / junk / "big.bin").write_bytes(b"\0" * 4_000_000)
    home = tmp_path / "home"
    home.mkdir()
    for line in _plugin_commands("./idc-mcp"):  # the README's commands for a local clone
        _claude(claude, home, *line[1:], cwd=tmp_path)
    installed = json.loads((home / ".claude" / "plugins" / "installed_plugins.json").read_text())
    (entry,) = installed["plugins"]["idc-mcp@idc-mcp"]
    copied = [p for p in Path(entry["installPath"]).rglob("*") if p.is_file()]
    names = {p.name for p in copied}
    assert {"pyproject.toml", "SKILL.md", "server.py", ".mcp.json", "hooks.json"} <= names
    assert ".venv" not in {part for p in copied for part in p.parts} and not any(
        (p.parent.name == "tests") for p in copied
    )
    assert sum(p.stat().st_size for p in copied if p.name != "big.bin") < 5_000_000
    # A local folder is loaded in place by Claude Code (it says so in the README): the server runs from it.
    listed = _claude(claude, home, "mcp", "list", path="/usr/bin:/bin")
    assert f"uvx --from {clone / PLUGIN} idc-mcp" in listed, listed


def test_without_uvx_a_claude_code_session_says_what_to_install(tmp_path: Path) -> None:
    # Without uv, Claude Code's only word was "Failed to connect". The plugin's SessionStart hook names
    # uvx and uv and says what to do; Claude Code shows it to the user and gives it to the model.
    claude = npm_tool("claude")
    home = tmp_path / "home"
    home.mkdir()
    args = ["--plugin-dir", str(REPO / PLUGIN), "-p", "hello", "--output-format", "stream-json", "--verbose"]

    def hook_outputs(path: str) -> list[str]:
        # Not logged in: the session stops before any request to Anthropic, after the SessionStart hooks.
        env = dict(os.environ, HOME=str(home), PATH=path, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
        env.pop("ANTHROPIC_API_KEY", None)
        done = subprocess.run(
            [str(claude), *args], capture_output=True, text=True, timeout=300, env=env, cwd=home, check=False
        )
        events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        responses = [e for e in events if e.get("subtype") == "hook_response"]
        assert responses, done.stdout[-2000:] + done.stderr[-2000:]
        return [e.get("output", "") for e in responses]

    node = str(Path(shutil.which("node") or "/usr/bin/node").parent)
    (missing,) = hook_outputs(f"{node}{os.pathsep}/usr/bin{os.pathsep}/bin")
    message = json.loads(missing)["systemMessage"]
    assert "uvx" in message and "Install uv" in message and "restart Claude Code" in message
    assert hook_outputs(f"{_uv().parent}{os.pathsep}{node}{os.pathsep}/usr/bin{os.pathsep}/bin") == [""]


# ---------------------------------------------------------------- Claude Desktop bundle
@pytest.mark.slow
@pytest.mark.anyio
async def test_mcpb_bundle_validates_packs_and_starts_as_its_manifest_says(
    tmp_path: Path, built_catalog: Path
) -> None:
    mcpb = npm_tool("mcpb")
    build = subprocess.run(
        [
            sys.executable,
            str(REPO / "packaging" / "build_mcpb.py"),
            "--mcpb",
            str(mcpb),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert "Manifest schema validation passes" in build.stdout
    bundle = Path(build.stdout.strip().splitlines()[-1])
    unpacked = tmp_path / "installed"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(unpacked)
    manifest = json.loads((unpacked / "manifest.json").read_text())
    assert manifest["manifest_version"] == "0.4" and manifest["server"]["type"] == "uv"
    assert {t["name"] for t in manifest["tools"]} >= {"query", "download", "fetch_index"}

    # Fill the placeholders as Claude Desktop does: the bundle folder and the user's answers.
    downloads = tmp_path / "my downloads"
    answers = {"download_root": str(downloads), "s3_endpoint_url": ""}
    assert set(answers) == set(manifest["user_config"])

    def fill(text: str) -> str:
        text = text.replace("${__dirname}", str(unpacked))
        return re.sub(r"\$\{user_config\.(\w+)\}", lambda m: answers[m.group(1)], text)

    config = manifest["server"]["mcp_config"]
    env = _server_env(**{name: fill(value) for name, value in config["env"].items()})
    await _answers_as_idc_mcp(config["command"], [fill(arg) for arg in config["args"]], env)

    # The download folder from user_config is where the server writes.
    params = StdioServerParameters(
        command=config["command"], args=[fill(a) for a in config["args"]], env=env, cwd=str(tmp_path)
    )
    with anyio.fail_after(TIMEOUT_S):
        async with Client(params, mode="legacy", read_timeout_seconds=TIMEOUT_S) as client:
            written = await client.call_tool(
                "export_manifest", {"collection_ids": ["rider_pilot"], "format": "csv", "path": "m.csv"}
            )
            assert not written.is_error, written.content
    assert "rider_pilot" in (downloads / "m.csv").read_text()


# ---------------------------------------------------------------- uvx, no clone (the README's commands)
def _plugin_commands(source: str) -> list[list[str]]:
    """The README's plugin install for one source (REPO_URL or a local clone): add, then install."""
    lines = _readme_commands("claude plugin")
    adds = [line for line in lines if line[2:4] == ["marketplace", "add"] and line[4] == source]
    installs = {tuple(line) for line in lines if line[2] == "install"}
    assert len(adds) == 1 and len(installs) == 1, lines
    return [adds[0], list(installs.pop())]


def _readme_commands(start: str) -> list[list[str]]:
    """The README's shell commands that start with `start`, as argument lists."""
    lines = [line.strip() for line in shell_lines(README) if line.strip().startswith(start)]
    assert lines, f"the README shows no `{start} ...` command"
    return [shlex.split(line, comments=True) for line in lines]


def _desktop_config() -> dict[str, object]:
    blocks = re.findall(r"```json\n(.*?)```", README.read_text(), re.S)
    (server,) = [json.loads(block)["mcpServers"]["idc"] for block in blocks if '"mcpServers"' in block]
    return server


@pytest.mark.slow
@pytest.mark.anyio
async def test_uvx_from_a_git_url_or_a_local_clone_runs_the_server_as_the_readme_says(
    tmp_path: Path, built_catalog: Path
) -> None:
    clone = tmp_path / "idc-mcp.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(REPO), str(clone)], check=True, timeout=120)

    def local(args: list[str]) -> list[str]:  # the README's REPO_URL -> this repository, cloned
        return [arg.replace("REPO_URL", clone.as_uri()) for arg in args]

    env = _server_env()
    _repository_copy(tmp_path / "idc-mcp")  # the README's local clone, ./idc-mcp from tmp_path
    checks = [c for c in _readme_commands("uvx --from") if "--version" in c]  # the install checks
    assert sorted(c[2] for c in checks) == ["./idc-mcp", "git+REPO_URL"]
    for command in checks:
        version = subprocess.run(
            [str(_uv().parent / "uvx"), *local(command[1:])],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=env,
            cwd=tmp_path,
            check=False,
        )
        assert version.returncode == 0, version.stderr[-2000:]
        assert version.stdout.strip().startswith("idc-mcp ")
    # The Claude Desktop configuration the README shows, as Claude Desktop would start it.
    desktop = _desktop_config()
    assert desktop["command"] == "uvx"
    server_env = _server_env(**{k: str(tmp_path / "downloads") for k in desktop["env"]})  # type: ignore[union-attr]
    tools = await _answers_as_idc_mcp("uvx", local(desktop["args"]), server_env)  # type: ignore[arg-type]
    assert "query" in tools


def test_every_claude_mcp_add_line_in_the_docs_is_accepted_by_claude(tmp_path: Path) -> None:
    # Run each documented `claude mcp add` with the real CLI in an empty home, and read back what it
    # registered (an option in the wrong place makes claude swallow the server name).
    claude = npm_tool("claude")
    lines = [
        shlex.split(line, comments=True)
        for path in [README, *sorted((REPO / "docs").glob("*.md"))]
        for line in shell_lines(path)
        if line.strip().startswith("claude mcp add")
    ]
    assert len(lines) >= 3
    for number, args in enumerate(lines):
        home = tmp_path / f"home{number}"
        home.mkdir()
        args = [
            a.replace("REPO_URL", "https://example.org/idc-mcp.git").replace("<token>", "t" * 40)
            for a in args
        ]
        done = subprocess.run(
            [str(claude), *args[1:]],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=home,
            env=dict(os.environ, HOME=str(home)),
            check=False,
        )
        assert done.returncode == 0, f"{shlex.join(args)}:\n{done.stdout}{done.stderr}"
        config = json.loads((home / ".claude.json").read_text())
        servers = config.get("mcpServers") or config["projects"][str(home)]["mcpServers"]
        registered = servers["idc"]
        if "--" in args:  # stdio: the command after `--` is what Claude Code will start
            command = args[args.index("--") + 1 :]
            assert [registered["command"], *registered["args"]] == command
        else:
            assert registered["type"] == "http" and registered["url"].endswith("/mcp")
