"""Memory and time of listings at their bounds, against a listing-only loopback store
(tests/huge_store.py) that mirrors ldct_and_projection_data with its real instance counts (8.04 M objects).

1. A dry run of the whole collection (the attack of the issue): seconds, objects the store listed, and the
   process's RSS before, at peak (sampled every 10 ms) and after.
2. A download-sized listing: the first patients' series up to MAX_OBJECTS_PER_CALL objects listed through
   `listing.list_all` (what a real download holds before it fetches): RSS growth per listed object.

Run: /work/venv/bin/python benchmarks/bench_listing_memory.py
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LARGE = "ldct_and_projection_data"


class Peak:
    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-listing-"))
    os.environ["IDC_MCP_DOWNLOAD_ROOT"] = str(root)
    from idc_mcp.catalog.database import get_catalog
    from idc_mcp.download import bounds, engine, listing, s3
    from idc_mcp.download.plan import DEFAULT_TEMPLATE, plan_series
    from idc_mcp.tools.selection import Selection, resolve_selection
    from tests.huge_store import serve_huge_store
    from tests.parquet import truth

    catalog = get_catalog()
    rows = truth(
        "SELECT aws_bucket, crdc_series_uuid, instanceCount FROM {index} WHERE collection_id = ?", [LARGE]
    )
    with serve_huge_store() as store:
        store.counts = {f"{b}/{u}/": n for b, u, n in rows}
        opts = engine.Options(endpoint_url=store.base)
        selection = Selection(collection_ids=[LARGE])
        # Warm up: catalog open, boto3 imported, the plan query run once.
        plans = plan_series(catalog, resolve_selection(catalog, selection), DEFAULT_TEMPLATE)
        s3.make_client(store.base, opts.workers + 4)
        gc.collect()
        before = psutil.Process().memory_info().rss
        peak = Peak()
        start = time.perf_counter()
        out = engine.download(catalog, selection, root, opts, dry_run=True)
        seconds = time.perf_counter() - start
        top = peak.stop()
        engine.clear_caches()
        gc.collect()
        after = psutil.Process().memory_info().rss
        print(
            f"dry run of {LARGE}: {len(plans)} series, {out.files_total:,} files by the index; "
            f"{out.series_estimated} series estimated; store listed {store.objects_listed:,} objects in "
            f"{store.requests} requests; {seconds:.1f} s; RSS before {mib(before)}, peak {mib(top)} "
            f"(+{mib(top - before)}), after clearing caches {mib(after)}"
        )

        # A download-sized listing: whole patients up to the per-call bound.
        chosen, total = [], 0
        for p in plans:
            if total + p.instance_count > bounds.MAX_OBJECTS_PER_CALL:
                break
            chosen.append(p)
            total += p.instance_count
        # Twice: the second round shows whether memory freed after the first is reused or grows.
        for round_ in (1, 2):
            store.objects_listed = 0
            gc.collect()
            before = psutil.Process().memory_info().rss
            peak = Peak()
            client = listing.LazyClient(lambda: s3.make_client(store.base, opts.workers + 4))
            start = time.perf_counter()
            listed = listing.list_all(
                client,
                chosen,
                root,
                store.base,
                opts.workers,
                opts.retry,
                threading.Event(),
                {},
                bounds.MAX_OBJECTS_PER_CALL,
            )
            seconds = time.perf_counter() - start
            held = psutil.Process().memory_info().rss
            top = peak.stop()
            n = sum(len(sf.files) for sf in listed)
            del listed
            engine.clear_caches()
            gc.collect()
            after = psutil.Process().memory_info().rss
            print(
                f"round {round_}: listing {len(chosen)} series, {n:,} objects "
                f"(bound {bounds.MAX_OBJECTS_PER_CALL:,}): {seconds:.1f} s; RSS before {mib(before)}, "
                f"+{mib(held - before)} held ({(held - before) / max(n, 1):,.0f} B/object), "
                f"peak +{mib(top - before)}, after release {mib(after)}"
            )


if __name__ == "__main__":
    main()
