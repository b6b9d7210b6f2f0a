"""Decoding the pixels of one instance (one frame, or all of them), with a clear error per codec.

Codecs: uncompressed, RLE, JPEG baseline/extended/lossless, JPEG-LS and JPEG 2000, through pydicom
with the pylibjpeg plugins (libjpeg, openjpeg, rle) and Pillow; a deflated dataset is inflated as it is
read, within a cap (`inflate`). Only the frame asked for is read: pydicom seeks to it through the
(ranged) file. Callers check a frame's decoded size against `bounds` (from its header) first.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from idc_mcp.preview.errors import PreviewError
from idc_mcp.preview.remote import WHOLE_DATASET_LIMIT, RemoteObject, Store

# Attributes the rendering reads besides the image pixel module (group 0028, always returned).
_WANTED = [
    0x00080008,  # ImageType
    0x00080016,  # SOPClassUID
    0x00080018,  # SOPInstanceUID
    0x00080060,  # Modality
    0x00180015,  # BodyPartExamined
    0x00180050,  # SliceThickness
    0x00181164,  # ImagerPixelSpacing (projection radiography, mammography)
    0x00200013,  # InstanceNumber
    0x00200032,  # ImagePositionPatient
    0x00200037,  # ImageOrientationPatient
    0x52009229,  # SharedFunctionalGroupsSequence (rescale, window, spacing of enhanced objects)
]


def _undecodable(syntax: object, exc: BaseException) -> PreviewError:
    uid = UID(str(syntax)) if syntax else None
    name = f"{uid.name} ({uid})" if uid else "an unknown transfer syntax"
    return PreviewError(
        f"The pixels of this instance are encoded as {name}, which cannot be decoded here ({exc}). "
        "Look at it with get_viewer_url() instead, or download it and open it in a DICOM viewer."
    )


def _syntax_of(f: io.BufferedIOBase | io.BytesIO) -> object:
    try:
        f.seek(0)
        return pydicom.dcmread(f, stop_before_pixels=True, specific_tags=[0x00020010]).file_meta.get(
            "TransferSyntaxUID"
        )
    except Exception:  # noqa: BLE001 - only used to name the syntax in an error message
        return None


def read_frame(store: Store, obj: RemoteObject, index: int | None) -> tuple[Dataset, np.ndarray]:
    """The attributes rendering needs and the pixels of frame `index` (None: a single-frame image)."""
    from pydicom.pixels import pixel_array

    f = store.read_dicom(obj)
    with f:
        ds = Dataset()
        try:
            arr = pixel_array(f, index=index, ds_out=ds, specific_tags=_WANTED)
        except PreviewError:  # the store failed while pydicom was reading: not a codec problem
            raise
        except (NotImplementedError, RuntimeError, ValueError) as exc:
            raise _undecodable(_syntax_of(f), exc) from exc
        except (InvalidDicomError, AttributeError, EOFError, OSError) as exc:
            raise PreviewError(f"s3://{obj.bucket}/{obj.key} has no readable pixel data ({exc}).") from exc
    return ds, np.asarray(arr)


def read_dataset(store: Store, obj: RemoteObject) -> Dataset:
    """The whole instance, pixels not yet decoded (segmentations and slide levels decode frame by frame)."""
    f = store.read_dicom(obj, WHOLE_DATASET_LIMIT)
    with f:
        try:
            ds = pydicom.dcmread(f)
            _ = ds.get("PixelData")  # read now: the file closes when this returns
        except PreviewError:
            raise
        except (InvalidDicomError, EOFError, OSError, ValueError) as exc:
            raise PreviewError(f"s3://{obj.bucket}/{obj.key} is not a readable DICOM file ({exc}).") from exc
    if "PixelData" not in ds:
        raise PreviewError(f"s3://{obj.bucket}/{obj.key} has no pixel data to show.")
    try:
        from pydicom.pixels import get_decoder

        get_decoder(ds.file_meta.TransferSyntaxUID)
    except NotImplementedError as exc:
        raise _undecodable(ds.file_meta.get("TransferSyntaxUID"), exc) from exc
    return ds


def iter_frames(ds: Dataset, indices: list[int]):  # type: ignore[no-untyped-def]
    """The decoded frames `indices` (ascending) of a dataset read by `read_dataset`, one at a time."""
    from pydicom.pixels import iter_pixels

    try:
        for arr in iter_pixels(ds, indices=indices):
            yield np.asarray(arr)
    except PreviewError:
        raise
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
        raise _undecodable(ds.file_meta.get("TransferSyntaxUID"), exc) from exc


def pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    """Row and column spacing in mm, from the image or the shared functional groups."""
    holders = [ds]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        holders += list(shared[0].get("PixelMeasuresSequence") or [])
    for holder in holders:
        value = holder.get("PixelSpacing") or holder.get("ImagerPixelSpacing")
        if value and len(value) == 2:
            return float(value[0]), float(value[1])
    return None
