"""Every setting of idc-mcp, declared once: its environment variable, type, range, default and meaning.

`Settings` below is the only declaration. From it come the command line's flags (`cli.py` adds one flag for
each setting that declares `flag`), the `--help` text, and README's configuration table (`settings_table()`,
checked by tests/test_config.py). The settings are read once per run (`load_settings`, with the flags'
values over the environment's) and handed down: to the server's factory, or to a subcommand. Tools read
them from their call, never from the environment.

A value that does not fit (a word where a number belongs, 0.5 threads, a negative timeout) stops the start
with a `SettingError` naming the variable and what to set instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import idc_index_data
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "IDC_MCP_"
DEFAULT_S3_ENDPOINT = "https://s3.amazonaws.com"
GB = 10**9
# BigQuery bills at least 10 MB per table a query reads: a lower cap would refuse every query.
MIN_BQ_CAP_GB = 0.01
_MEMORY = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|B)", re.IGNORECASE)


def _setting(
    default: Any = None,
    *,
    env: str,
    description: str,
    shown_default: str,
    flag: str | None = None,
    secret: bool = False,
    **limits: Any,
) -> Any:
    """One setting: `env` is its variable without the prefix; `flag` the command-line group that offers it
    as `--<name>` ("" for the main options); `shown_default` is how the docs state the default."""
    extra: dict[str, Any] = {"env": PREFIX + env, "shown_default": shown_default, "secret": secret}
    if flag is not None:
        extra["flag"] = flag
    factory = default if callable(default) else None
    return Field(
        **({"default_factory": factory} if factory else {"default": default}),
        validation_alias=AliasChoices(PREFIX + env),
        description=description,
        json_schema_extra=extra,
        **limits,
    )


MAX_THREADS = 256


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one): a query running
    alone uses them all; queries running at once share DuckDB's one pool of that many threads."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this system (macOS, Windows)
        cores = os.cpu_count() or 1
    return min(max(1, cores), MAX_THREADS)


class SettingError(ValueError):
    """A setting has a value we cannot use; the message names the variable and what to set instead."""


class Settings(BaseSettings):
    """The settings of one run. Built by `load_settings()` (the environment, with overrides) or directly
    (`Settings(download_root=...)`, e.g. in tests); `model_copy(update=...)` makes a variant."""

    model_config = SettingsConfigDict(
        env_ignore_empty=True,  # an empty variable means "unset", as a shell's `VAR=` does
        str_strip_whitespace=True,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
    )

    # -- files and places
    download_root: Path = _setting(
        lambda: Path.home() / "idc-mcp-downloads",
        env="DOWNLOAD_ROOT",
        flag="",
        shown_default="`~/idc-mcp-downloads`",
        description="every file the server writes lands inside this folder",
    )
    s3_endpoint_url: str = _setting(
        DEFAULT_S3_ENDPOINT,
        env="S3_ENDPOINT_URL",
        flag="",
        shown_default=f"`{DEFAULT_S3_ENDPOINT}`",
        description="S3 endpoint for downloads and previews (anonymous); a mirror or test server",
        min_length=1,
    )
    cache_dir: Path = _setting(
        lambda: Path.home() / ".cache" / "idc-mcp",
        env="CACHE_DIR",
        flag="",
        shown_default="`~/.cache/idc-mcp`",
        description="catalog database and fetched indices, per data version; cached previews "
        "(64 MiB at most)",
    )
    index_dir: Path | None = _setting(
        env="INDEX_DIR",
        shown_default="unset",
        description="folder of index parquet files for air-gapped use",
    )
    index_base_url: str | None = _setting(
        env="INDEX_BASE_URL",
        shown_default="idc-index-data release assets",
        description="where `fetch_index` downloads from",
    )
    # -- fetching indices
    fetch_timeout_s: float = _setting(
        30.0,
        env="FETCH_TIMEOUT",
        shown_default="30",
        description="seconds `fetch_index` waits for the network (and for another fetch of the same index)",
        gt=0,
    )
    fetch_deadline_s: float = _setting(
        1800.0,
        env="FETCH_DEADLINE",
        shown_default="1800",
        description="seconds one `fetch_index` call may take in all; a slower transfer is cut",
        gt=0,
    )
    # -- the query worker
    query_timeout_s: float = _setting(
        20.0,
        env="QUERY_TIMEOUT",
        shown_default="20",
        description="seconds before a query is stopped (its worker is killed if it does not stop)",
        gt=0,
    )
    worker_memory_mib: float = _setting(
        700.0,
        env="WORKER_MEMORY",
        shown_default="700",
        description="MiB of resident memory the query worker may hold before it is killed and replaced",
        gt=0,
    )
    # Shared by up to 4 concurrent queries (256MB failed concurrent check_licenses under 50 HTTP
    # clients); the hard bound is the worker's resident-memory limit (worker_memory_mib).
    memory_limit: str = _setting(
        "384MB",
        env="MEMORY_LIMIT",
        shown_default="384MB",
        description="DuckDB's memory limit in the worker, shared by the queries running at once (e.g. 1GB)",
    )
    threads: int = _setting(
        usable_cores,
        env="THREADS",
        shown_default="the cores this process may use",
        description="DuckDB threads in the query worker, shared by the queries running at once",
        ge=1,
        le=MAX_THREADS,
    )
    # -- previews
    preview_timeout_s: float = _setting(
        60.0,
        env="PREVIEW_TIMEOUT",
        shown_default="60",
        description="seconds a preview may take before its worker process is killed and the call refused",
        gt=0,
    )
    # -- the team server
    tokens_file: Path | None = _setting(
        env="TOKENS_FILE",
        flag="team",
        shown_default="unset",
        description="bearer tokens for HTTP, one '<id> <token> [expiry]' per line (see docs/team-server.md)",
    )
    tokens: SecretStr | None = _setting(
        env="TOKENS",
        secret=True,
        shown_default="unset",
        description="the tokens file's lines themselves (';' may separate them), e.g. from a secret store",
    )
    read_only: bool = _setting(
        False,
        env="READ_ONLY",
        shown_default="off",
        description="what `--read-only` sets: no tool writes for a caller or tells it the server's disk",
    )
    # -- BigQuery (the optional tools; docs/bigquery.md)
    bq_project: str | None = _setting(
        env="BQ_PROJECT",
        shown_default="the ADC project",
        description="Google Cloud project that runs (and pays for) the BigQuery jobs",
    )
    bq_max_gb: float = _setting(
        10.0,
        env="BQ_MAX_GB",
        shown_default="10",
        description="refuse a BigQuery query scanning more GB (10^9 bytes); also its maximum_bytes_billed",
        gt=0,
    )
    bq_timeout_s: float = _setting(
        300.0,
        env="BQ_TIMEOUT",
        shown_default="300",
        description="seconds a BigQuery job may run before it is cancelled",
        gt=0,
    )
    bq_usd_per_tib: float = _setting(
        6.25,
        env="BQ_USD_PER_TIB",
        shown_default="6.25",
        description="on-demand BigQuery price used in cost estimates",
        gt=0,
    )
    bq_api_endpoint: str | None = _setting(
        env="BQ_API_ENDPOINT",
        shown_default="unset",
        description="a BigQuery-compatible endpoint (an emulator); anonymous requests",
    )

    @field_validator("download_root", "cache_dir", "index_dir", "tokens_file", mode="after")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("bq_max_gb", mode="after")
    @classmethod
    def _at_least_the_minimum_bill(cls, value: float) -> float:
        return max(value, MIN_BQ_CAP_GB)

    @field_validator("memory_limit", mode="after")
    @classmethod
    def _a_size(cls, value: str) -> str:
        if not _MEMORY.fullmatch(value):
            raise ValueError("give a size with its unit, such as 384MB, 1GB or 2GiB")
        return value.upper().replace("IB", "iB")

    # -- derived values
    @property
    def worker_memory_bytes(self) -> int:
        """Resident memory the query worker may hold (it is killed above it): with the server's own
        ~100-150 MiB, the whole server stays under 1 GiB whatever a query does."""
        return int(self.worker_memory_mib * 2**20)

    @property
    def bq_max_bytes(self) -> int:
        return int(self.bq_max_gb * GB)

    @property
    def data_version(self) -> str:
        """The idc-index-data version: catalog files and fetched indices are cached per version."""
        return idc_index_data.__version__

    @property
    def version_cache_dir(self) -> Path:
        return self.cache_dir / self.data_version


def load_settings(**overrides: Any) -> Settings:
    """The settings of this run: the environment's, with `overrides` (settings by name, e.g. the command
    line's flags) over them. Raises SettingError naming every variable whose value cannot be used."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingError(_explain(exc, overrides)) from None


def _explain(exc: ValidationError, overrides: dict[str, Any]) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        info = Settings.model_fields.get(field)
        if info is None:  # the location is the alias the value came from
            field = next((n for n, f in Settings.model_fields.items() if _env(f) == field), field)
            info = Settings.model_fields.get(field)
        if info is None:
            problems.append(str(error["msg"]))
            continue
        name = f"--{field.replace('_', '-')}" if field in overrides else _env(info)
        value = "" if _extra(info).get("secret") else f"={error.get('input')!r}"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(
            f"{name}{value}: {message[0].lower()}{message[1:]}. It sets: {info.description}; unset, it is "
            f"{_extra(info)['shown_default'].strip('`')}"
        )
    return "invalid setting: " + "; ".join(problems)


def _extra(info: Any) -> dict[str, Any]:
    return info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}


def _env(info: Any) -> str:
    return str(_extra(info)["env"])


def declared() -> list[tuple[str, str, str, str, str | None]]:
    """(name, variable, description, shown default, command-line group or None) of every setting."""
    return [
        (name, _env(info), info.description or "", _extra(info)["shown_default"], _extra(info).get("flag"))
        for name, info in Settings.model_fields.items()
    ]


def flag_of(name: str) -> str:
    return "--" + name.removesuffix("_s").replace("_", "-")


def settings_table() -> str:
    """README's configuration table, made from the declaration."""
    lines = ["| variable (flag) | meaning | default |", "| --- | --- | --- |"]
    for name, env, description, default, flag in declared():
        shown = f"`{env}`" + (f" (`{flag_of(name)}`)" if flag is not None else "")
        lines.append(f"| {shown} | {description} | {default} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m idc_mcp.config: print README's table
    print(settings_table())
