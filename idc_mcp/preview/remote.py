"""Reading IDC objects over anonymous S3 with ranged GETs, counting every byte received.

A preview needs a few headers and one or a few instances, never the whole series. `RangedObject` is a
seekable file over one object: pydicom reads it like a local file and only the ranges it touches are
fetched (a header costs one small GET; `pydicom.pixels.pixel_array(f, index=i)` reads one frame).
The client, the retry rule and the endpoint setting are those of downloads (`idc_mcp.object_store`).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from typing import Any

from idc_mcp import object_store
from idc_mcp.catalog.memo import Memo
from idc_mcp.preview.errors import PreviewError

HEADER_BUFFER = 8 << 10  # one GET holds the header (groups 0002-0028) of a typical CT/MR instance
WHOLE_OBJECT_LIMIT = 4 << 20  # smaller objects are fetched in one GET when they are read entirely
# An instance read whole (a slide level, a SEG) up to this size is fetched in one GET: pydicom scans
# encapsulated pixel data for its end, then reads it, so by ranges it would be fetched twice.
WHOLE_DATASET_LIMIT = 32 << 20
PREFIX_LIMIT = 1 << 20  # the first bytes of each object read are kept (<= 1 MiB each) and never fetched twice
READ_PIECE = 8 << 20  # the largest single ranged GET of a file read
RETRY = object_store.RetryPolicy(attempts=4, base_delay_s=0.25, max_delay_s=2.0)
# Listings of the series previewed last (see `Store.list_series_once`): at most 100,000 objects.
LISTINGS: Memo[tuple[RemoteObject, ...]] = Memo(maxsize=100_000, getsizeof=len)


@dataclass(frozen=True)
class RemoteObject:
    bucket: str
    key: str
    size: int


@dataclass
class Store:
    """The S3 client of one preview and the tally of what it moved (shared by worker threads)."""

    endpoint: str
    client: Any
    bytes_fetched: int = 0
    requests: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Bytes [0, n) already received per object: a header read and the later read of the whole
    # instance share them, so a sorted-then-shown slice costs its size once.
    _prefix: dict[tuple[str, str], bytes] = field(default_factory=dict)

    @classmethod
    def open(cls, endpoint: str, cancel: threading.Event | None = None) -> Store:
        client = object_store.make_client(endpoint, 16, 10, 60)
        return cls(endpoint, client, cancel=cancel or threading.Event())

    def _count(self, n: int) -> None:
        with self._lock:
            self.bytes_fetched += n
            self.requests += 1

    def list_series(self, bucket: str, prefix: str) -> list[RemoteObject]:
        try:
            found = object_store.with_retries(
                lambda: object_store.list_objects(self.client, bucket, prefix),
                RETRY,
                self.cancel,
                f"s3://{bucket}/{prefix}",
            )
        except object_store.StoreUnavailable as exc:
            raise PreviewError(
                f"{object_store.unreachable(self.endpoint, exc)} A preview needs the network; offline, the "
                "catalog still answers (search, licenses, sizes, citations)."
            ) from exc
        except object_store.ObjectError as exc:
            raise PreviewError(f"Listing the series failed: {exc}.") from exc
        objects = [RemoteObject(bucket, o["Key"], int(o["Size"])) for o in found if int(o["Size"]) > 0]
        if objects:
            LISTINGS.put((self.endpoint, bucket, prefix), tuple(objects))
        return objects

    def list_series_once(self, bucket: str, prefix: str) -> list[RemoteObject]:
        """The series' objects, listed once per process: an IDC series' objects never change under its
        crdc_series_uuid (a changed series gets a new one), so stepping through its slices lists it once."""
        known = LISTINGS.get((self.endpoint, bucket, prefix))
        return list(known) if known is not None else self.list_series(bucket, prefix)

    def get(self, obj: RemoteObject, start: int = 0, end: int | None = None) -> bytes:
        """Bytes [start, end) of an object (the whole object by default); known first bytes are reused."""
        end = obj.size if end is None else min(end, obj.size)
        if start >= end:
            return b""
        with self._lock:
            head = self._prefix.get((obj.bucket, obj.key), b"")
        if end <= len(head):
            return head[start:end]
        if head and start <= len(head):
            data = head[start:] + self._fetch(obj, len(head), end)
        else:
            data = self._fetch(obj, start, end)
        if start == 0 or (head and start <= len(head)):
            joined = head[:start] + data
            if len(joined) <= PREFIX_LIMIT:
                with self._lock:
                    self._prefix[(obj.bucket, obj.key)] = joined
        return data

    def _fetch(self, obj: RemoteObject, start: int, end: int) -> bytes:
        """One GET of bytes [start, end), with retries."""
        whole = start == 0 and end == obj.size

        def attempt() -> bytes:
            if whole:
                data = object_store.get_bytes(self.client, obj.bucket, obj.key)
            else:
                data = object_store.get_bytes(self.client, obj.bucket, obj.key, start, end)
            self._count(len(data))
            if len(data) != end - start:
                raise ConnectionError(f"body cut short: {len(data)} of {end - start} bytes")  # retried
            return data

        try:
            return object_store.with_retries(attempt, RETRY, self.cancel, f"s3://{obj.bucket}/{obj.key}")
        except object_store.StoreUnavailable as exc:
            raise PreviewError(
                f"{object_store.unreachable(self.endpoint, exc)} Try the preview again later."
            ) from exc
        except object_store.ObjectError as exc:
            raise PreviewError(f"Reading an object of the series failed: {exc}.") from exc

    def open_object(self, obj: RemoteObject, buffer: int = HEADER_BUFFER) -> io.BufferedReader:
        """A seekable binary file over the object: each buffer refill is one ranged GET."""
        return io.BufferedReader(RangedObject(self, obj), buffer_size=buffer)

    def read_object(
        self, obj: RemoteObject, whole_limit: int = WHOLE_OBJECT_LIMIT
    ) -> io.BufferedReader | io.BytesIO:
        """A file for reading pixels: objects up to `whole_limit` in one GET, larger ones by ranges as
        pydicom asks (reads of a whole frame bypass the buffer)."""
        if obj.size <= whole_limit:
            return io.BytesIO(self.get(obj))
        return self.open_object(obj, buffer=64 << 10)

    def open_dicom(self, obj: RemoteObject, buffer: int = HEADER_BUFFER) -> Any:
        """`open_object`, inflating a deflated DICOM object as it is read and never past a cap."""
        from idc_mcp.preview.inflate import open_dicom

        return open_dicom(self.open_object(obj, buffer), f"s3://{obj.bucket}/{obj.key}")

    def read_dicom(self, obj: RemoteObject, whole_limit: int = WHOLE_OBJECT_LIMIT) -> Any:
        """`read_object`, inflating a deflated DICOM object as it is read and never past a cap."""
        from idc_mcp.preview.inflate import open_dicom

        return open_dicom(self.read_object(obj, whole_limit), f"s3://{obj.bucket}/{obj.key}")


class RangedObject(io.RawIOBase):
    """A read-only, seekable raw file over one S3 object; every read is a ranged GET."""

    def __init__(self, store: Store, obj: RemoteObject) -> None:
        self.store = store
        self.obj = obj
        self.pos = 0

    @property
    def name(self) -> str:  # pydicom records it as the file name of what it reads
        return f"s3://{self.obj.bucket}/{self.obj.key}"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.obj.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        # At most READ_PIECE per GET: a large value (a SEG's pixel data) is not held twice, as the
        # bytes of one response and again in the caller's buffer.
        view = memoryview(buffer).cast("B")[:READ_PIECE]
        data = self.store.get(self.obj, self.pos, self.pos + len(view))
        view[: len(data)] = data
        self.pos += len(data)
        return len(data)
