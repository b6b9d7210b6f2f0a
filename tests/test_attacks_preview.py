"""Previews under attack (issue 21, part 1): objects that declare sizes they are not.

Each attack object (tests/preview_attacks.py) is small on a local S3 mirror and huge once decoded. Each
is previewed by a real server process (`python -m idc_mcp` over stdio) while the resident memory of
its whole process tree (the server, its query worker, its preview workers) is sampled: every one must
be answered with a clear refusal or a bounded picture, with the tree below 1 GiB. The deadline and
the memory cap of the preview worker are shown by the worker being killed (not by timing a call).

Red-team class: preview-decompression-bombs.
"""

from __future__ import annotations

import io
import os
import socket
import sys
import threading
from pathlib import Path

import anyio
import psutil
import pydicom
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from idc_mcp.cancellation import CallCancellation, current_call
from idc_mcp.preview import bounds
from idc_mcp.preview.errors import PreviewError
from idc_mcp.preview.inflate import open_dicom
from idc_mcp.preview.request import prepare
from idc_mcp.preview.runner import PreviewCancelled, PreviewWorkers
from tests.test_security import ONE_GIB
from tests.test_server_memory import ChildPeakRss

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def attack_mirror():
    from tests.preview_attacks import start_attack_mirror

    mirror = start_attack_mirror()
    yield mirror
    mirror.server.stop()


async def preview_on_a_server(mirror, arguments: dict):  # type: ignore[no-untyped-def]
    """The reply of preview_series on a real server process, and the peak memory of its process tree."""
    env = dict(os.environ, IDC_MCP_S3_ENDPOINT_URL=mirror.endpoint)
    server = StdioServerParameters(command=sys.executable, args=["-m", "idc_mcp"], env=env, cwd=str(ROOT))
    with ChildPeakRss() as sampler, anyio.fail_after(300):
        async with Client(server, mode="legacy", read_timeout_seconds=120) as client:
            result = await client.call_tool("preview_series", arguments)
    assert sampler.found.is_set(), "the server process was never seen"
    assert sampler.peak < ONE_GIB, f"server tree peak RSS: {sampler.peak / 2**20:.0f} MiB"
    return result, sampler


def refusal(result) -> str:  # type: ignore[no-untyped-def]
    """The refusal text, after checking it is one: an error the assistant reads, no traceback, and not
    the deadline or the memory cap (those are the backstop, not the answer to a declared size)."""
    assert result.is_error, result.structured_content
    text = result.content[0].text
    assert "Traceback" not in text
    assert "preview deadline" not in text and "of memory a preview may use" not in text, text
    assert "get_viewer_url()" in text or "slices" in text  # what to do instead
    return text


@pytest.mark.anyio
async def test_slide_level_of_6000_tiles_in_a_256px_matrix_decodes_only_the_tile_that_covers_it(
    attack_mirror, built_catalog
):
    result, _ = await preview_on_a_server(
        attack_mirror, {"series_uid": attack_mirror.cases["slide_6000"].uid}
    )
    assert not result.is_error, result.content[0].text
    facts = result.structured_content
    assert facts["preview"] == "slide_thumbnail" and facts["source_size"] == "256 x 256"
    assert any("this level has 6000 tiles" in n and "the 1 that cover" in n for n in facts["notes"])


@pytest.mark.anyio
async def test_deflated_ct_declaring_24000_squared_is_refused_before_inflating_its_pixels(
    attack_mirror, built_catalog
):
    result, _ = await preview_on_a_server(
        attack_mirror, {"series_uid": attack_mirror.cases["deflated_ct_24000"].uid}
    )
    text = refusal(result)
    assert "24,000 x 24,000" in text and f"at most {bounds.MAX_FRAME_BYTES >> 20} MiB" in text


@pytest.mark.anyio
async def test_deflated_seg_of_1_1_gib_pixel_data_is_refused_from_its_header(attack_mirror, built_catalog):
    result, _ = await preview_on_a_server(
        attack_mirror, {"series_uid": attack_mirror.cases["deflated_seg"].uid}
    )
    text = refusal(result)
    assert "1,100 frames of 1,024 x 1,024" in text and f"at most {bounds.MAX_SEG_BYTES >> 20} MiB" in text


@pytest.mark.anyio
async def test_rle_slice_declaring_23000_squared_at_16_bits_is_refused_before_decoding(
    attack_mirror, built_catalog
):
    result, _ = await preview_on_a_server(
        attack_mirror, {"series_uid": attack_mirror.cases["rle_slice_23000"].uid}
    )
    text = refusal(result)
    assert "23,000 x 23,000" in text and "16 bits" in text


@pytest.mark.anyio
async def test_ultrasound_jpeg_of_16000_squared_rgb_is_refused_before_decoding(attack_mirror, built_catalog):
    result, _ = await preview_on_a_server(attack_mirror, {"series_uid": attack_mirror.cases["us_16000"].uid})
    text = refusal(result)
    assert "16,000 x 16,000" in text and "3 sample(s)" in text


@pytest.mark.anyio
async def test_montage_of_a_16px_ct_declaring_2_31_frames_is_refused_before_listing_frames(
    attack_mirror, built_catalog
):
    result, _ = await preview_on_a_server(
        attack_mirror, {"series_uid": attack_mirror.cases["ct_of_2_31_frames"].uid, "kind": "montage"}
    )
    text = refusal(result)
    assert "NumberOfFrames = 2,147,483,647" in text


@pytest.mark.anyio
async def test_montage_of_25_rle_frames_of_4096_squared_is_refused_with_the_slices_that_fit(
    attack_mirror, built_catalog
):
    result, _ = await preview_on_a_server(
        attack_mirror,
        {"series_uid": attack_mirror.cases["rle_40_frames_4096"].uid, "kind": "montage", "slices": 25},
    )
    text = refusal(result)
    # 25 frames x 32 MiB = 800 MiB decoded; 16 such frames fit in the 512 MiB a picture may decode.
    assert "25 frames of 32.0 MiB" in text and "(16 such frames)" in text and "fewer slices" in text


@pytest.mark.anyio
async def test_seg_of_3000_segments_on_one_slice_draws_the_20_largest(attack_mirror, built_catalog):
    result, _ = await preview_on_a_server(attack_mirror, {"series_uid": attack_mirror.cases["seg_3000"].uid})
    assert not result.is_error, result.content[0].text
    facts = result.structured_content
    assert facts["preview"] == "seg_overlay"
    drawn = [s["number"] for s in facts["segments"]]
    assert len(drawn) == bounds.MAX_SEGMENTS_DRAWN
    # Segment n covers (n % 200) + 1 rows: the largest are those with n % 200 == 199 (15 of them), then 198.
    assert all(n % 200 in (198, 199) for n in drawn)
    assert any("2,980 more segment mask(s)" in n for n in facts["notes"])


@pytest.mark.anyio
async def test_deflated_ct_whose_pixel_data_outgrows_its_header_reads_only_its_frame(
    attack_mirror, built_catalog
):
    # 256 x 256 declared, 1.1 GiB of pixel data deflated: only the declared frame is inflated and shown.
    result, sampler = await preview_on_a_server(
        attack_mirror, {"series_uid": attack_mirror.cases["deflated_ct_lying"].uid}
    )
    assert not result.is_error, result.content[0].text
    assert result.structured_content["source_size"] == "256 x 256"
    assert sampler.seen["preview.worker"], "the preview ran outside a preview worker"


@pytest.mark.anyio
async def test_deflated_seg_whose_pixel_data_outgrows_its_header_is_stopped(attack_mirror, built_catalog):
    # One 256 x 256 frame declared, 900 MiB of pixel data deflated: a SEG is read whole, so this one is
    # refused at the inflate cap (or by the worker's memory cap), never inflated in full.
    result, _ = await preview_on_a_server(
        attack_mirror, {"series_uid": attack_mirror.cases["deflated_seg_lying"].uid}
    )
    assert result.is_error
    text = result.content[0].text
    assert "inflates to more than" in text or "of memory a preview may use" in text, text


# -- the bounds themselves, in process ------------------------------------------------------------------
def test_deflated_dataset_inflates_within_its_cap_and_keeps_only_a_window(attack_mirror):
    from tests.preview_attacks import deflated_ct_lying

    data = deflated_ct_lying(attack_mirror.cases["deflated_ct_lying"])
    # Read whole (as a SEG is), it is refused at the cap instead of inflating 1.1 GiB.
    with pytest.raises(PreviewError, match=r"inflates to more than 64 MiB"):
        pydicom.dcmread(open_dicom(io.BytesIO(data), "s3://x/y", limit=64 << 20))
    # The header alone inflates a few kilobytes, whatever follows it.
    f = open_dicom(io.BytesIO(data), "s3://x/y")
    header = pydicom.dcmread(f, stop_before_pixels=True)
    assert header.Rows == 256 and f.raw.end < 1 << 20


def _stalling_endpoint() -> tuple[str, socket.socket, threading.Event]:
    """An HTTP endpoint that accepts connections and never answers (a store that hangs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue
        for conn in held:
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", listener, stop


def _pid_gone(pid: int | None) -> bool:
    return pid is not None and (not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie")


def test_a_preview_past_its_deadline_is_killed_with_its_worker(catalog, attack_mirror):
    endpoint, listener, stop = _stalling_endpoint()
    workers = PreviewWorkers(deadline_s=3)
    try:
        request = prepare(catalog, endpoint, None, attack_mirror.cases["seg_source_ct"].uid)
        with pytest.raises(PreviewError, match=r"took longer than 3 s \(the preview deadline\)"):
            workers.run(request, lambda uid: None)
    finally:
        stop.set()
        listener.close()
    workers.close()
    assert workers.started >= 1 and _pid_gone(workers.last_pid)


def test_a_cancelled_preview_stops_its_worker_at_once(catalog, attack_mirror):
    endpoint, listener, stop = _stalling_endpoint()
    workers = PreviewWorkers(deadline_s=300)
    call = CallCancellation()
    failure: list[BaseException] = []

    def run() -> None:
        current_call.set(call)
        try:
            workers.run(
                prepare(catalog, endpoint, None, attack_mirror.cases["seg_source_ct"].uid), lambda u: None
            )
        except BaseException as exc:  # noqa: BLE001 - checked below
            failure.append(exc)

    thread = threading.Thread(target=run)
    try:
        thread.start()
        while workers.last_pid is None:  # the worker started: it now waits on the hanging store
            thread.join(0.05)
        call.cancel()
        thread.join(60)
    finally:
        stop.set()
        listener.close()
    workers.close()
    assert not thread.is_alive()
    assert failure and isinstance(failure[0], PreviewCancelled)
    assert _pid_gone(workers.last_pid)


def test_a_worker_over_the_memory_cap_is_killed_and_the_call_refused(catalog, attack_mirror):
    # Read whole, the SEG's 900 MiB pixel data element would inflate up to the inflate cap: a worker
    # allowed 200 MiB is stopped first (its address-space cap or the server's watch on its memory).
    workers = PreviewWorkers(memory_bytes=200 << 20)
    request = prepare(catalog, attack_mirror.endpoint, None, attack_mirror.cases["deflated_seg_lying"].uid)
    assert bounds.MAX_INFLATED_BYTES > 200 << 20
    with pytest.raises(PreviewError, match=r"needed more than the 200 MiB of memory a preview may use"):
        workers.run(request, lambda uid: None)
    workers.close()
    assert _pid_gone(workers.last_pid)
