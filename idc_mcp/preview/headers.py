"""Instance headers read with one ranged GET each, and the anatomical order of a series' slices.

Sorting needs only a few attributes near the start of each file (group 0020 and before, plus the slide
pyramid's matrix size in group 0048), so a header read stops there: large private blocks are skipped by
seeking, and the pixel data is never touched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_partial

from idc_mcp.catalog.memo import Memo
from idc_mcp.preview import bounds
from idc_mcp.preview.errors import PreviewError
from idc_mcp.preview.inflate import is_inflated
from idc_mcp.preview.remote import RemoteObject, Store

HEADER_WORKERS = 16  # like the download pool: header reads are latency-bound
# The headers of the series looked at last: stepping through the slices of one series (the explorer's
# viewer) sorts them once, not once per slice. Keyed by endpoint and every object's bucket, key and size.
SERIES_HEADERS: Memo[list[Header]] = Memo(maxsize=20_000, getsizeof=len)


@dataclass(frozen=True)
class Header:
    obj: RemoteObject
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    frames: int
    image_type: tuple[str, ...]
    total_rows: int | None  # slide microscopy: size of the whole level
    total_columns: int | None
    rows: int = 0
    columns: int = 0
    samples: int = 1
    bits_allocated: int = 0
    encapsulated: bool = False  # pixel data stored as compressed fragments (JPEG, RLE, ...)
    deflated: bool = False  # the whole dataset is deflated: its object size says nothing of its frames

    @property
    def what(self) -> str:
        return f"s3://{self.obj.bucket}/{self.obj.key}"

    def frame_bytes(self) -> int:
        """Decoded bytes of one frame, after refusing absurd dimensions or frame counts (bounds)."""
        one = bounds.check_geometry(
            self.what, self.rows, self.columns, self.samples, self.bits_allocated, self.frames
        )
        if not self.deflated:  # a deflated object's inflation is capped as it is read (preview.inflate)
            bounds.check_frames_fit(self.what, self.frames, one, self.obj.size, self.encapsulated)
        return one

    @property
    def normal(self) -> np.ndarray | None:
        if self.orientation is None or len(self.orientation) != 6:
            return None
        row, col = np.array(self.orientation[:3]), np.array(self.orientation[3:])
        n = np.cross(row, col)
        norm = float(np.linalg.norm(n))
        return n / norm if norm > 1e-6 else None


def _stop_after(last: int):  # type: ignore[no-untyped-def]
    def stop(tag: pydicom.tag.BaseTag, vr: str | None, length: int) -> bool:
        return int(tag) > last

    return stop


# Geometry and frame count end with group 0028; a slide level's matrix size is (0048,0006-0007).
# Stopping there skips what follows: private blocks (e.g. Siemens' 0029), a slide's optical paths with
# their ICC profiles (0048,0105), the functional groups (5200,xxxx) and the pixels.
IMAGE_TAGS, SLIDE_TAGS = 0x0028FFFF, 0x00480007


def _numbers(value: object, count: int) -> tuple[float, ...] | None:
    try:
        numbers = tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count else None


def read_header(store: Store, obj: RemoteObject, last_tag: int = IMAGE_TAGS) -> Header:
    """The sorting attributes of one instance, from the first bytes of its file."""
    with store.open_dicom(obj) as f:
        deflated = is_inflated(f)
        try:
            ds = read_partial(f, stop_when=_stop_after(last_tag), defer_size=4096)
        except PreviewError:  # the store failed: say so, not that the file is bad
            raise
        except (InvalidDicomError, EOFError, ValueError, OSError) as exc:
            raise PreviewError(f"s3://{obj.bucket}/{obj.key} is not a readable DICOM file ({exc}).") from exc
    position = _numbers(ds.get("ImagePositionPatient"), 3)
    try:
        number = int(ds.get("InstanceNumber")) if ds.get("InstanceNumber") not in (None, "") else None
    except (TypeError, ValueError):
        number = None
    total_rows = ds.get("TotalPixelMatrixRows")
    total_cols = ds.get("TotalPixelMatrixColumns")
    meta = getattr(ds, "file_meta", None)
    syntax = pydicom.uid.UID(str(meta.get("TransferSyntaxUID", "")) if meta is not None else "")
    return Header(
        obj=obj,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        instance_number=number,
        position=position,  # type: ignore[arg-type]
        orientation=_numbers(ds.get("ImageOrientationPatient"), 6),
        frames=_integer(ds.get("NumberOfFrames"), 1),
        image_type=tuple(str(v).upper() for v in (ds.get("ImageType") or ())),
        total_rows=int(total_rows) if total_rows else None,
        total_columns=int(total_cols) if total_cols else None,
        rows=_integer(ds.get("Rows"), 0),
        columns=_integer(ds.get("Columns"), 0),
        samples=_integer(ds.get("SamplesPerPixel"), 1),
        bits_allocated=_integer(ds.get("BitsAllocated"), 0),
        encapsulated=bool(syntax) and syntax.is_encapsulated,
        deflated=deflated,
    )


def _integer(value: object, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default


def read_headers(store: Store, objects: list[RemoteObject], last_tag: int = IMAGE_TAGS) -> list[Header]:
    """The headers of `objects` (read once per series and kept: SERIES_HEADERS holds 20,000 headers)."""
    key = (store.endpoint, last_tag, tuple((o.bucket, o.key, o.size) for o in objects))
    if (known := SERIES_HEADERS.get(key)) is not None:
        return list(known)
    with ThreadPoolExecutor(max_workers=max(1, min(HEADER_WORKERS, len(objects)))) as pool:
        heads = list(pool.map(lambda o: read_header(store, o, last_tag), objects))
    SERIES_HEADERS.put(key, heads)
    return list(heads)


def find_header(store: Store, objects: list[RemoteObject], wanted: Callable[[Header], bool]) -> Header | None:
    """The first instance whose header satisfies `wanted`, reading headers in parallel batches and
    stopping at the batch that holds it (on average half the series instead of all of it)."""
    batch = 2 * HEADER_WORKERS
    with ThreadPoolExecutor(max_workers=max(1, min(HEADER_WORKERS, len(objects)))) as pool:
        for start in range(0, len(objects), batch):
            heads = list(pool.map(lambda o: read_header(store, o), objects[start : start + batch]))
            found = next((h for h in heads if wanted(h)), None)
            if found is not None:
                return found
    return None


def frame_order(ds: pydicom.Dataset) -> tuple[list[int], list[float | None], str]:
    """Frames of a multi-frame instance in anatomical order, from per-frame plane positions when given."""
    frames = int(ds.get("NumberOfFrames") or 1)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared = ds.get("SharedFunctionalGroupsSequence") or [pydicom.Dataset()]
    orientation = None
    plane = shared[0].get("PlaneOrientationSequence")
    if plane:
        orientation = _numbers(plane[0].get("ImageOrientationPatient"), 6)
    positions: list[tuple[float, ...] | None] = []
    for item in per_frame[:frames]:
        plane_pos = item.get("PlanePositionSequence")
        positions.append(_numbers(plane_pos[0].get("ImagePositionPatient"), 3) if plane_pos else None)
        if orientation is None and item.get("PlaneOrientationSequence"):
            orientation = _numbers(item.PlaneOrientationSequence[0].get("ImageOrientationPatient"), 6)
    if orientation and len(positions) == frames and all(p is not None for p in positions):
        normal = np.cross(np.array(orientation[:3]), np.array(orientation[3:]))
        offsets = [float(np.dot(p, normal)) for p in positions]  # type: ignore[arg-type]
        order = sorted(range(frames), key=lambda i: offsets[i])
        return order, [offsets[i] for i in order], "frames sorted by position along the slice normal"
    return list(range(frames)), [None] * frames, "frames in stored order (no per-frame positions)"


@dataclass(frozen=True)
class Stack:
    """Slices in anatomical order (ascending position along the slice normal)."""

    headers: list[Header]
    offsets: list[float | None]  # mm along the normal, None when the series has no geometry
    note: str


def anatomical_order(headers: list[Header]) -> Stack:
    """The largest group of parallel slices, sorted by position along their normal.

    Object names and instance numbers are not an order: IDC names objects by random UUIDs. A series
    with more than one orientation (e.g. localizers) keeps its largest stack; without geometry the
    order falls back to InstanceNumber and the note says so.
    """
    with_geometry = [h for h in headers if h.position is not None and h.normal is not None]
    if len(with_geometry) >= max(2, len(headers) // 2):
        keys = Counter(tuple(np.round(h.normal, 3)) for h in with_geometry)  # type: ignore[arg-type]
        main, count = keys.most_common(1)[0]
        normal = np.array(main)
        stack = [h for h in with_geometry if tuple(np.round(h.normal, 3)) == main]  # type: ignore[arg-type]
        offsets = {id(h): float(np.dot(h.position, normal)) for h in stack}
        stack.sort(key=lambda h: (offsets[id(h)], h.instance_number or 0))
        note = "sorted by position along the slice normal"
        if count < len(headers):
            note += f" ({count} of {len(headers)} instances share the main orientation; others left out)"
        return Stack(stack, [offsets[id(h)] for h in stack], note)
    ordered = sorted(headers, key=lambda h: (h.instance_number is None, h.instance_number or 0, h.obj.key))
    return Stack(ordered, [None] * len(ordered), "no slice geometry in the headers: sorted by InstanceNumber")


# The sorted stacks of the series looked at last (sorting 200 slices takes ~80 ms: once per series).
SERIES_STACKS: Memo[Stack] = Memo(maxsize=64)


def known_stacks() -> list[tuple[Hashable, Stack]]:
    """The stacks this process sorted, keyed as `read_stack` keys them: a preview worker hands them back
    with its picture, and the server gives them to the next worker that shows the same series (a worker
    makes one preview and exits: without them every slider move read all the series' headers again)."""
    return SERIES_STACKS.items()


def remember_stacks(stacks: list[tuple[Hashable, Stack]]) -> None:
    """Stacks another worker sorted. A key names the endpoint and every object with its size: a series
    changed in the store since then has other keys and is read again."""
    for key, stack in stacks:
        SERIES_STACKS.put(key, stack)


def read_stack(store: Store, objects: list[RemoteObject]) -> Stack:
    """The series' slices in anatomical order (headers read and sorted once per series)."""
    key = (store.endpoint, tuple((o.bucket, o.key, o.size) for o in objects))
    if (known := SERIES_STACKS.get(key)) is not None:
        return known
    stack = anatomical_order(read_headers(store, objects))
    SERIES_STACKS.put(key, stack)
    return stack


def read_full_header(store: Store, obj: RemoteObject) -> pydicom.Dataset:
    """Every attribute before the pixel data (per-frame functional groups included)."""
    with store.open_dicom(obj, buffer=64 << 10) as f:
        try:
            return pydicom.dcmread(f, stop_before_pixels=True)
        except PreviewError:
            raise
        except (InvalidDicomError, EOFError, ValueError, OSError) as exc:
            raise PreviewError(f"s3://{obj.bucket}/{obj.key} is not a readable DICOM file ({exc}).") from exc
