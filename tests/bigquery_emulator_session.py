"""One emulator for the test session: started, seeded with the synthetic IDC tables, stopped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bigquery_data import SyntheticIdc, seed, synthetic_idc
from tests.bqemulator import DATA_PROJECT, Emulator, emulator_executable, start_emulator

BILLING_PROJECT = "idc-mcp-tests"


@dataclass
class EmulatorSession:
    emulator: Emulator
    client: Any  # google.cloud.bigquery.Client for the test billing project
    data: SyntheticIdc
    datasets: list[str]
    billing_project: str = BILLING_PROJECT

    @property
    def endpoint(self) -> str:
        return self.emulator.endpoint


@contextmanager
def emulator_session(home: Path) -> Iterator[EmulatorSession]:
    executable = emulator_executable()  # skips (or fails in CI) when there is none
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    from idc_mcp.catalog import get_catalog

    emulator = start_emulator(executable, home)
    try:
        client = bigquery.Client(
            project=BILLING_PROJECT,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=emulator.endpoint),
        )
        data = synthetic_idc(get_catalog())
        datasets = seed(client, bigquery, data)
        assert DATA_PROJECT == "bigquery-public-data"
        yield EmulatorSession(emulator=emulator, client=client, data=data, datasets=datasets)
    finally:
        emulator.stop()
