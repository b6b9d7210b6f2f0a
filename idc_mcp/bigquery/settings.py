"""BigQuery settings, read from the environment when a tool runs.

| variable | meaning | default |
| --- | --- | --- |
| IDC_MCP_BQ_PROJECT | Google Cloud project that runs (and pays for) the jobs | the ADC project |
| IDC_MCP_BQ_MAX_GB | refuse a query scanning more GB (10^9 bytes); also the job's maximum_bytes_billed | 10 |
| IDC_MCP_BQ_TIMEOUT | seconds a job may run before it is cancelled | 300 |
| IDC_MCP_BQ_USD_PER_TIB | on-demand price used in cost estimates | 6.25 |
| IDC_MCP_BQ_API_ENDPOINT | a BigQuery-compatible endpoint (an emulator); anonymous requests | unset |
"""

from __future__ import annotations

import os
from dataclasses import dataclass

GB = 10**9
TIB = 2**40
DEFAULT_MAX_GB = 10.0
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_USD_PER_TIB = 6.25
# BigQuery bills at least 10 MB per table a query reads: a lower cap would refuse every query.
MIN_CAP_GB = 0.01


class SettingError(ValueError):
    """An environment variable has a value we cannot use; the message says what to set."""


@dataclass(frozen=True)
class BigQuerySettings:
    project: str | None
    max_gb: float
    timeout_s: float
    usd_per_tib: float
    api_endpoint: str | None

    @property
    def max_bytes(self) -> int:
        return int(self.max_gb * GB)


def _positive(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingError(f"{name}={raw!r} is not a number; set it like {name}={default:g}.") from exc
    if not value > minimum:
        raise SettingError(f"{name}={raw!r} must be greater than {minimum:g}; e.g. {name}={default:g}.")
    return value


def load_bigquery_settings() -> BigQuerySettings:
    return BigQuerySettings(
        project=os.environ.get("IDC_MCP_BQ_PROJECT", "").strip() or None,
        max_gb=max(_positive("IDC_MCP_BQ_MAX_GB", DEFAULT_MAX_GB), MIN_CAP_GB),
        timeout_s=_positive("IDC_MCP_BQ_TIMEOUT", DEFAULT_TIMEOUT_S),
        usd_per_tib=_positive("IDC_MCP_BQ_USD_PER_TIB", DEFAULT_USD_PER_TIB),
        api_endpoint=os.environ.get("IDC_MCP_BQ_API_ENDPOINT", "").strip() or None,
    )
