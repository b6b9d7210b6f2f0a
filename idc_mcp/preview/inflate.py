"""Deflated DICOM objects, inflated as they are read and never past a cap.

pydicom inflates a Deflated Explicit VR Little Endian dataset whole, in memory, before reading its
first element: 1 MB of deflated zeros becomes 1.1 GiB. `open_dicom` gives pydicom instead a file that
reads as the same object in Explicit VR Little Endian and inflates only as far as pydicom reads: a
header read stops before the pixel data (which is then never inflated), only a window of what was
inflated is kept, and no read inflates past `limit` bytes.
"""

from __future__ import annotations

import io
import zlib
from typing import Any, BinaryIO

from pydicom.filereader import _read_file_meta_info
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from idc_mcp.preview.bounds import MAX_INFLATED_BYTES, MiB
from idc_mcp.preview.errors import PreviewError

CHUNK = 64 << 10  # deflated bytes read at a time
STEP = 4 << 20  # inflated bytes produced at a time
WINDOW = 8 << 20  # inflated bytes kept behind the read position


def open_dicom(f: BinaryIO, name: str, limit: int = MAX_INFLATED_BYTES) -> Any:
    """`f` itself (at offset 0), or, for a deflated object, a file over its bounded inflation."""
    prefix = f.read(132)
    if len(prefix) < 132 or prefix[128:] != b"DICM":
        f.seek(0)
        return f
    try:
        meta = _read_file_meta_info(f)
    except Exception:  # noqa: BLE001 - not ours to judge here: pydicom reports it when it reads
        f.seek(0)
        return f
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        f.seek(0)
        return f
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    head = io.BytesIO()
    head.write(prefix)
    write_file_meta_info(head, meta, enforce_standard=False)  # type: ignore[arg-type]
    return io.BufferedReader(Inflated(head.getvalue(), f, limit, name), buffer_size=64 << 10)


def is_inflated(f: Any) -> bool:
    """Whether `f` came from `open_dicom` inflating a deflated object."""
    return isinstance(getattr(f, "raw", None), Inflated)


class Inflated(io.RawIOBase):
    """A seekable file: `head` (preamble and file meta), then the inflation of `source` from where it is.

    Only the last WINDOW inflated bytes are kept (a read far back inflates again from the start), and
    no more than `limit` bytes are ever inflated: memory stays at the window plus what the caller reads.
    """

    def __init__(self, head: bytes, source: BinaryIO, limit: int, name: str) -> None:
        self.head = head
        self.source = source
        self.source_start = source.tell()
        self.limit = limit
        self._name = name
        self.pos = 0
        self._restart()

    def _restart(self) -> None:
        self.source.seek(self.source_start)
        self.z = zlib.decompressobj(-zlib.MAX_WBITS)
        self.window = bytearray(self.head)
        self.window_start = 0  # file offset of window[0]
        self.done = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def end(self) -> int:
        """File offset one past the last byte inflated so far."""
        return self.window_start + len(self.window)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            self._fill(None)
            base = self.end
        else:
            base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")[:STEP]  # a large read is served piece by piece
        if self.pos < self.window_start:
            self._restart()  # a read behind the window: inflate again from the start
        self._fill(self.pos + len(view))
        start = self.pos - self.window_start
        with memoryview(self.window) as window:
            chunk = window[start : start + len(view)]
            view[: len(chunk)] = chunk
            count = len(chunk)
            chunk.release()
        self.pos += count
        # Keep WINDOW bytes behind the position (pydicom steps back a little at times), drop the rest.
        drop = self.pos - WINDOW - self.window_start
        if drop > 0:
            del self.window[:drop]
            self.window_start += drop
        return count

    def close(self) -> None:
        try:
            self.source.close()
        finally:
            super().close()

    def _fill(self, upto: int | None) -> None:
        """Inflate until the file is known up to offset `upto` (None: to its end), refusing past the limit."""
        while not self.done and (upto is None or self.end < upto):
            room = self.limit - (self.end - len(self.head))
            if room < 0:
                raise PreviewError(
                    f"{self._name} is stored deflated (Deflated Explicit VR Little Endian) and inflates "
                    f"to more than {self.limit // MiB} MiB, the most a preview inflates. Download it, or "
                    "look at it with get_viewer_url()."
                )
            compressed = self.z.unconsumed_tail
            if not compressed:
                if self.z.eof:
                    self.done = True
                    break
                compressed = self.source.read(CHUNK)
                if not compressed:
                    self.window += self.z.flush()
                    self.done = True
                    break
            try:
                wanted = STEP if upto is None else max(CHUNK, upto - self.end)  # no more than asked
                self.window += self.z.decompress(compressed, min(STEP, wanted, room + 1))
            except zlib.error as exc:
                raise PreviewError(f"{self._name} is not a valid deflated DICOM dataset ({exc}).") from exc
            if upto is None:  # to the end, keeping nothing: only the length is wanted
                drop = len(self.window) - WINDOW
                if drop > 0:
                    del self.window[:drop]
                    self.window_start += drop
