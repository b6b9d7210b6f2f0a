"""The BigQuery connection: the optional library, credentials and billing project, dry runs, capped jobs
that can be cancelled, and API errors turned into next steps.

google-cloud-bigquery is imported only here and only when a tool runs (the `bigquery` extra is
optional). `scanned_bytes` is the single place a dry run's byte figure is read.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from idc_mcp.bigquery.guard import PUBLIC_PROJECT
from idc_mcp.cancellation import on_cancel
from idc_mcp.config import Settings

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.5
BIGQUERY_SCOPE = "https://www.googleapis.com/auth/bigquery"

SETUP_STEPS = (
    "To use BigQuery: (1) install the extra: pip install 'idc-mcp[bigquery]' (google-cloud-bigquery); "
    "(2) sign in with Application Default Credentials: `gcloud auth application-default login`, or set "
    "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file; (3) set IDC_MCP_BQ_PROJECT to a "
    "Google Cloud project you may run BigQuery jobs in (it pays for them; the first 1 TiB scanned each "
    "month is free, and the BigQuery sandbox needs no billing account); then restart the server. "
    "Without BigQuery, query() answers series-level questions from the local catalog, free and offline."
)


class BigQueryUnavailable(RuntimeError):
    """BigQuery cannot be used here (library, credentials, project); the message gives the setup steps."""


class BigQueryJobError(RuntimeError):
    """BigQuery refused or failed a request; the message says what to change."""

    def __init__(self, message: str, api_message: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.api_message = api_message
        self.reason = reason


class BigQueryTimeout(BigQueryJobError):
    """A request to BigQuery got no answer in time."""


class BigQueryCancelled(Exception):
    """The caller cancelled (or the timeout ended) the job."""


def library() -> Any:
    """The google.cloud.bigquery module, or the setup steps when the extra is not installed."""
    try:
        from google.cloud import bigquery
    except ImportError as exc:
        raise BigQueryUnavailable(f"google-cloud-bigquery is not installed. {SETUP_STEPS}") from exc
    return bigquery


def scanned_bytes(dry_run_job: Any) -> int:
    """The bytes a dry-run job says the query would scan: the one reader of that figure."""
    return int(dry_run_job.total_bytes_processed or 0)


@dataclass
class JobOutcome:
    job_id: str
    location: str | None
    columns: list[str]
    rows: list[dict[str, Any]]
    more_rows: bool
    bytes_processed: int | None
    bytes_billed: int | None
    cache_hit: bool | None
    elapsed_s: float


@dataclass
class Backend:
    """A BigQuery client for one billing project (or an emulator endpoint)."""

    client: Any
    project: str
    endpoint: str | None
    timeout_s: float  # IDC_MCP_BQ_TIMEOUT
    _submitted: dict[str, str | None] = field(default_factory=dict)

    # ------------------------------------------------------------------ cost
    def dry_run(self, sql: str) -> int:
        bigquery = library()
        config = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False, use_legacy_sql=False)
        job = _api(
            lambda: self.client.query(
                sql, job_config=config, timeout=REQUEST_TIMEOUT_S, retry=_retry(), job_retry=None
            )
        )
        return scanned_bytes(job)

    # ------------------------------------------------------------------ jobs
    def new_job_id(self) -> str:
        return f"idc_mcp_{uuid.uuid4().hex}"

    def run(
        self,
        sql: str,
        job_id: str,
        max_bytes: int,
        cap_rows: int,
        cancel: threading.Event,
        on_submit: Callable[[str], None] | None = None,
    ) -> JobOutcome:
        """Run `sql` as job `job_id` with maximum_bytes_billed, wait (cancellable), fetch <= cap_rows rows."""
        bigquery = library()
        config = bigquery.QueryJobConfig(
            maximum_bytes_billed=max_bytes, use_legacy_sql=False, labels={"client": "idc-mcp"}
        )
        started = time.monotonic()
        self._submitted[job_id] = None
        if on_submit is not None:
            on_submit(job_id)
        if cancel.is_set():
            raise BigQueryCancelled(job_id)
        asked = threading.Event()  # jobs.cancel was sent

        def cancel_job(wait: bool) -> None:
            if not asked.is_set():
                asked.set()
                self.cancel(job_id) if wait else self.cancel_soon(job_id)

        # A cancelled call cancels the job at once, also while jobs.insert is still waiting for its answer.
        with on_cancel(lambda: cancel_job(wait=False)):
            return self._submit_and_wait(sql, job_id, config, started, cancel, cap_rows, cancel_job)

    def _submit_and_wait(
        self,
        sql: str,
        job_id: str,
        config: Any,
        started: float,
        cancel: threading.Event,
        cap_rows: int,
        cancel_job: Callable[[bool], None],
    ) -> JobOutcome:
        try:
            # BigQuery answers at once with a running job; an emulator may answer only when it is done.
            job = _api(
                lambda: self.client.query(
                    sql,
                    job_config=config,
                    job_id=job_id,
                    timeout=self.timeout_s,
                    retry=None,  # a job id can be submitted once
                    job_retry=None,
                )
            )
        except BigQueryTimeout as exc:
            self.cancel_soon(job_id)
            raise self._too_long() from exc
        self._submitted[job_id] = job.location
        deadline = started + self.timeout_s
        while not _api(lambda: job.done(retry=_retry(), timeout=REQUEST_TIMEOUT_S)):
            if cancel.wait(POLL_INTERVAL_S):
                cancel_job(True)
                raise BigQueryCancelled(job_id)
            if time.monotonic() > deadline:
                self.cancel(job_id)
                raise self._too_long()
        if cancel.is_set():
            raise BigQueryCancelled(job_id)
        iterator = _api(lambda: job.result(max_results=cap_rows, timeout=REQUEST_TIMEOUT_S, retry=_retry()))
        columns = [f.name for f in iterator.schema]
        rows = [dict(row.items()) for row in iterator]
        total = iterator.total_rows
        return JobOutcome(
            job_id=job.job_id,
            location=job.location,
            columns=columns,
            rows=rows,
            more_rows=total is not None and total > len(rows),
            bytes_processed=job.total_bytes_processed,
            bytes_billed=job.total_bytes_billed,
            cache_hit=job.cache_hit,
            elapsed_s=round(time.monotonic() - started, 3),
        )

    def _too_long(self) -> BigQueryJobError:
        return BigQueryJobError(
            f"The job ran longer than {self.timeout_s:g} s (IDC_MCP_BQ_TIMEOUT) and was cancelled. "
            "Narrow it: filter on collection_id or Modality, read fewer columns, or aggregate."
        )

    def cancel_soon(self, job_id: str) -> None:
        """Send jobs.cancel from its own thread: the caller does not wait for BigQuery's answer."""
        threading.Thread(target=self.cancel, args=(job_id,), name=f"cancel-{job_id}", daemon=True).start()

    def cancel(self, job_id: str) -> None:
        """Ask BigQuery to stop a job we submitted (best effort: a failure is logged, not raised)."""
        if job_id not in self._submitted:
            return
        try:
            self.client.cancel_job(
                job_id, location=self._submitted.get(job_id), timeout=REQUEST_TIMEOUT_S, retry=_retry()
            )
            log.info("cancelled BigQuery job %s", job_id)
        except Exception:  # noqa: BLE001 - cancelling is best effort; the job's own cap still holds
            log.warning("could not cancel BigQuery job %s", job_id, exc_info=True)

    # ------------------------------------------------------------------ metadata
    def get_table(self, full_name: str) -> Any:
        return _api(lambda: self.client.get_table(full_name, timeout=REQUEST_TIMEOUT_S, retry=_retry()))

    def list_tables(self, dataset: str) -> list[str]:
        return _api(
            lambda: [
                t.table_id
                for t in self.client.list_tables(
                    f"{PUBLIC_PROJECT}.{dataset}", timeout=REQUEST_TIMEOUT_S, retry=_retry()
                )
            ]
        )

    def list_datasets(self) -> list[str]:
        return _api(
            lambda: [
                d.dataset_id
                for d in self.client.list_datasets(PUBLIC_PROJECT, timeout=REQUEST_TIMEOUT_S, retry=_retry())
            ]
        )


def _retry() -> Any:
    """Retry transient errors for at most 30 s (the library default is 10 minutes)."""
    return library().DEFAULT_RETRY.with_timeout(REQUEST_TIMEOUT_S)


_BACKENDS: dict[tuple[str | None, str | None], Backend] = {}
_BACKENDS_LOCK = threading.Lock()


def connect(settings: Settings) -> Backend:
    """A client for the configured billing project: ADC credentials, or anonymous for an emulator."""
    key = (settings.bq_project, settings.bq_api_endpoint)
    with _BACKENDS_LOCK:
        cached = _BACKENDS.get(key)
        if cached is not None and cached.timeout_s == settings.bq_timeout_s:
            return cached
        bigquery = library()
        from google.api_core.client_options import ClientOptions

        if settings.bq_api_endpoint:
            from google.auth.credentials import AnonymousCredentials

            credentials: Any = AnonymousCredentials()
            project = settings.bq_project or PUBLIC_PROJECT
            options = ClientOptions(api_endpoint=settings.bq_api_endpoint)
        else:
            credentials, adc_project = _default_credentials()
            project = settings.bq_project or adc_project
            options = None
            if not project:
                raise BigQueryUnavailable(
                    "No billing project: set IDC_MCP_BQ_PROJECT to the id of a Google Cloud project you "
                    "may run BigQuery jobs in (or `gcloud config set project ID` before "
                    f"`gcloud auth application-default login`). {SETUP_STEPS}"
                )
        client = bigquery.Client(project=project, credentials=credentials, client_options=options)
        backend = Backend(
            client=client, project=project, endpoint=settings.bq_api_endpoint, timeout_s=settings.bq_timeout_s
        )
        _BACKENDS[key] = backend
        return backend


def _default_credentials() -> tuple[Any, str | None]:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        return google.auth.default(scopes=[BIGQUERY_SCOPE])
    except DefaultCredentialsError as exc:
        first = str(exc).splitlines()[0][:200]
        raise BigQueryUnavailable(f"No Google credentials were found ({first}). {SETUP_STEPS}") from exc


def _api(call: Callable[[], Any]) -> Any:
    """Run one API call, turning credential, permission, quota and connection failures into next steps.
    Errors about the query itself (400, 404) become BigQueryJobError with the API's own message."""
    import requests
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    try:
        return call()
    except auth.RefreshError as exc:
        raise BigQueryUnavailable(
            f"The Google credentials were refused or have expired ({_first(exc)}). Sign in again: "
            "`gcloud auth application-default login`, or check GOOGLE_APPLICATION_CREDENTIALS."
        ) from exc
    except auth.DefaultCredentialsError as exc:
        raise BigQueryUnavailable(f"No usable Google credentials ({_first(exc)}). {SETUP_STEPS}") from exc
    except (api.Unauthorized, api.Unauthenticated) as exc:
        raise BigQueryUnavailable(
            f"BigQuery did not accept the credentials ({_first(exc)}). Run "
            "`gcloud auth application-default login` again, or check GOOGLE_APPLICATION_CREDENTIALS."
        ) from exc
    except api.Forbidden as exc:
        raise BigQueryJobError(_forbidden_message(exc), _message(exc), _reason(exc)) from exc
    except api.TooManyRequests as exc:
        raise BigQueryJobError(
            f"BigQuery quota reached ({_first(exc)}). Wait and retry, or narrow the query.",
            _message(exc),
            _reason(exc),
        ) from exc
    except (api.BadRequest, api.NotFound) as exc:
        raise BigQueryJobError(_first(exc), _message(exc), _reason(exc)) from exc
    except api.GoogleAPICallError as exc:
        raise BigQueryJobError(
            f"BigQuery failed ({_first(exc)}). Retry later; if it persists, narrow the query.",
            _message(exc),
            _reason(exc),
        ) from exc
    except api.RetryError as exc:
        raise BigQueryJobError(
            f"BigQuery could not be reached within {REQUEST_TIMEOUT_S:g} s ({_first(exc)}). Check the "
            "network (and IDC_MCP_BQ_API_ENDPOINT if set), then retry."
        ) from exc
    except requests.Timeout as exc:
        raise BigQueryTimeout(f"BigQuery did not answer in time ({_first(exc)}).") from exc
    except OSError as exc:  # connection refused, DNS, TLS
        raise BigQueryJobError(
            f"BigQuery could not be reached ({_first(exc)}). Check the network (and IDC_MCP_BQ_API_ENDPOINT "
            "if set), then retry."
        ) from exc


def _forbidden_message(exc: Exception) -> str:
    text = _message(exc)
    reason = _reason(exc)
    if reason in ("quotaExceeded", "rateLimitExceeded") or "quota" in text.lower():
        return (
            f"BigQuery quota exceeded ({text[:300]}). The free tier is 1 TiB scanned per month: wait for "
            "the next month, enable billing on the project, or narrow the query (fewer columns)."
        )
    if reason == "billingNotEnabled" or "billing" in text.lower():
        return (
            f"Billing is not enabled on the billing project ({text[:300]}). Enable it, or use the "
            "BigQuery sandbox."
        )
    return (
        f"Access denied ({text[:300]}). The billing project (IDC_MCP_BQ_PROJECT) needs the BigQuery Job "
        "User role (bigquery.jobs.create) for your account; set IDC_MCP_BQ_PROJECT to a project where you "
        "have it."
    )


_REQUEST_PREFIX = re.compile(r"^(?:GET|POST|PUT|PATCH|DELETE) \S+: ")


def _message(exc: Exception) -> str:
    """BigQuery's own words: the first error's message, without the request line the library adds."""
    errors = getattr(exc, "errors", None) or []
    if errors and isinstance(errors[0], dict) and errors[0].get("message"):
        return str(errors[0]["message"])
    return _REQUEST_PREFIX.sub("", str(getattr(exc, "message", "") or exc))


def _reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None) or []
    if errors and isinstance(errors[0], dict):
        return str(errors[0].get("reason", ""))
    return ""


def _first(exc: Exception) -> str:
    return (_message(exc).strip().splitlines() or [type(exc).__name__])[0][:400]
