"""One emulator for the test session: started, seeded with the synthetic IDC tables, stopped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idc_mcp.guides import resources as docs
from tests.bigquery_data import SyntheticIdc, seed, synthetic_idc
from tests.bqemulator import DATA_PROJECT, Emulator, emulator_executable, start_emulator

BILLING_PROJECT = "idc-mcp-tests"


def bigquery_examples() -> list[docs.CodeExample]:
    """Every ```sql bigquery example of the skill and references."""
    return [
        e for e in docs.all_code_examples(docs.locate_docs()) if e.language == "sql" and e.info == "bigquery"
    ]


def releases_named_in_docs() -> tuple[str, ...]:
    return tuple(sorted({m for e in bigquery_examples() for m in re.findall(r"\bidc_v\d+\b", e.code)}))


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

    from idc_mcp.catalog.database import get_catalog

    emulator = start_emulator(executable, home)
    try:
        client = bigquery.Client(
            project=BILLING_PROJECT,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=emulator.endpoint),
        )
        data = synthetic_idc(get_catalog())
        datasets = seed(client, bigquery, data, releases_named_in_docs())
        assert DATA_PROJECT == "bigquery-public-data"
        yield EmulatorSession(emulator=emulator, client=client, data=data, datasets=datasets)
    finally:
        emulator.stop()
