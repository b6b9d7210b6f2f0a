"""The explorer app in the test browser: time from the `explore` call to the first painted overview, from
a slider move to the new slice on screen, and the bytes each slice moves — beside the peers measured in
the same run: the same `explore` call answered in text to a plain MCP client (no app), the model-visible
`preview_series` of the same slice, and downloading the series.

The series are bench_preview.py's (a 200-slice 512 x 512 chest CT of ~105 MB with 8 KB private blocks,
a SEG over it, a slide, a cine loop) in a moto S3 server on 127.0.0.1; the server is `idc-mcp
--transport streamable-http` on loopback; the browser is Debian's chromium driven by Playwright with the
test host of tests/explorer_host (AppBridge). Goals (issue 25): overview <= 1 s; next slice <= 300 ms
once the series' headers are read.

Run: /work/main/.venv/bin/python benchmarks/bench_explorer.py
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_download import start_moto  # noqa: E402
from bench_preview import build  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from idc_mcp.catalog.build import ensure_catalog_file  # noqa: E402
from idc_mcp.config import load_settings  # noqa: E402
from tests import explorer_browser as eb  # noqa: E402

MOVES = 12  # slider moves timed (each to a slice not shown before)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def _text_peer(url: str, args: dict, series_uid: str) -> tuple[float, float, int]:
    """Through a plain MCP client (no browser): explore answered in text (seconds), and the median of 5
    slices not shown before asked by index (seconds, image bytes), as the app asks for them."""
    http = httpx2.AsyncClient(timeout=120)
    async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
        started = time.perf_counter()
        reply = await client.call_tool("explore", args)
        text_s = time.perf_counter() - started
        assert not reply.is_error, reply.content
        times, sizes = [], []
        for index in (10, 42, 74, 106, 138):
            started = time.perf_counter()
            shown = await client.call_tool(
                "explorer_image", {"series_uid": series_uid, "kind": "slice", "slice_index": index}
            )
            times.append(time.perf_counter() - started)
            assert not shown.is_error, shown.content
            sizes.append(len(shown.content[0].data))
        return text_s, _median(times), int(_median(sizes))


def main() -> None:
    logging.disable(logging.INFO)
    proc, endpoint = start_moto()
    try:
        print("building the mirror…", file=sys.stderr)
        cases = build(endpoint)
        ct = cases["CT slice"]
        args = {"series_uids": [c.uid for c in cases.values()]}
        folder = Path(tempfile.mkdtemp(prefix="bench_explorer_"))
        page_html = eb.host_page(folder)
        built = ensure_catalog_file(load_settings())
        with eb.serve(folder, built, endpoint) as served:
            with eb.browser() as chromium:
                # warm-up: the server's first query, the catalog pages, the browser's first page
                page, frame, _ = eb.open_host(chromium, served, page_html, args)
                frame.locator("body[data-painted]").wait_for()
                page.close()
                overview_ms = []
                for _ in range(5):
                    page, frame, _ = eb.open_host(chromium, served, page_html, args)
                    frame.locator("body[data-painted]").wait_for()
                    called = page.evaluate("window.host.timings.calledAt")
                    painted = float(frame.locator("body").get_attribute("data-painted-at"))
                    overview_ms.append(painted - called)
                    page.close()

                page, frame, _ = eb.open_host(chromium, served, page_html, args)
                frame.locator("body[data-painted]").wait_for()
                frame.locator(f'.card[data-uid="{ct.uid}"]').click()
                frame.locator("#slice-number").filter(has_text="/ 200").wait_for()
                first_ms = float(frame.locator("#viewer-img").get_attribute("data-ms"))
                moves_ms, image_bytes, fetched = [], [], []
                for n in range(MOVES):
                    index = 3 + n * 16
                    shown = frame.locator("body").get_attribute("data-shown")
                    frame.locator("#slice").fill(str(index))
                    frame.locator(f'body:not([data-shown="{shown}"])').wait_for()
                    frame.locator("#slice-number").filter(has_text=f"{index + 1} / 200").wait_for()
                    img = frame.locator("#viewer-img")
                    moves_ms.append(float(img.get_attribute("data-ms")))
                    image_bytes.append(int(img.get_attribute("data-bytes")))
                    fetched.append(int(img.get_attribute("data-fetched")))
                page.close()
            # after the browser: Playwright's sync API holds this thread's event loop while it runs
            text_s, peer_slice_s, peer_bytes = anyio.run(_text_peer, f"{served.base}/mcp", args, ct.uid)
        series_bytes = ct.size
        overview = _median(overview_ms)
        move = _median(moves_ms)
        print(f"overview painted after the explore call: median {overview:.0f} ms of 5 (goal <= 1000 ms)")
        print(f"  peer, explore answered in text to a plain MCP client: {text_s * 1000:.0f} ms "
              f"(painted / text: {overview / (text_s * 1000):.2f}x)")  # fmt: skip
        print(f"first slice of the 200-slice CT (headers read): {first_ms:.0f} ms")
        print(f"slider move to a new slice: median {move:.0f} ms of {MOVES} (goal <= 300 ms), "
              f"max {max(moves_ms):.0f} ms")  # fmt: skip
        print(f"  peer, a new slice asked by a plain MCP client: {peer_slice_s * 1000:.0f} ms "
              f"(app / call: {move / (peer_slice_s * 1000):.2f}x)")  # fmt: skip
        print(f"bytes per slice: {_median(image_bytes):,.0f} B to the app (base64 image), "
              f"{_median(fetched):,.0f} B from S3; the series is {series_bytes:,} B "
              f"(download / slice from S3: {series_bytes / max(1.0, _median(fetched)):,.0f}x); "
              f"plain call image {peer_bytes:,} B")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
