"""Images -> NIfTI with dcm2niix (the converter the field uses, from its registry wheel).

dcm2niix runs as a subprocess on one series folder and writes into a private temporary folder inside
the download root; the caller moves the volumes into place atomically. A series that yields several
volumes (echoes, phases, orientations) gives each, with dcm2niix's own suffix (`_e2`, `_ph`, `_i00002`...)
after the series' name. When the slices are not evenly spaced, dcm2niix writes the stack as found (an
affine that cannot place every slice) and an equalized copy (`_Eq_1`, interpolated onto regular
spacing): only the equalized one is kept, and the sidecar says so.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from idc_mcp.prepare.errors import ConversionFailed, PrepareCancelled

MAX_REASON_CHARS = 400
POLL_S = 0.1
TIMEOUT_S = 3600  # one series; a 1,000-slice CT takes seconds


def binary() -> str:
    import dcm2niix

    return str(dcm2niix.bin)


def version() -> str:
    import dcm2niix

    return f"dcm2niix {dcm2niix.__version__}"


@dataclass(frozen=True)
class Volume:
    nifti: Path  # in the temporary folder
    sidecar: Path | None
    suffix: str  # what dcm2niix appended to the series' name ('' for a series of one volume)
    equalized: bool = False


def _reason(output: str) -> str:
    """The converter's own words: its error and warning lines, cut to MAX_REASON_CHARS."""
    lines = [ln.strip() for ln in output.splitlines() if re.match(r"\s*(error|warning)", ln, re.I)]
    if not lines:
        lines = output.strip().splitlines()[-1:] or ["no output"]
    return "; ".join(lines)[:MAX_REASON_CHARS]


def run_dcm2niix(source: Path, work: Path, cancel: threading.Event) -> list[Volume]:
    """Convert the DICOM files in `source` into `work` (empty, private); the volumes it made.

    Raises ConversionFailed with dcm2niix's reason when it fails or makes nothing, PrepareCancelled
    (after killing it) when `cancel` is set."""
    command = [binary(), "-z", "y", "-b", "y", "-ba", "y", "-f", "series", "-o", str(work), str(source)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.append(proc.stdout.read() if proc.stdout else ""))
    reader.start()
    waited = 0.0
    try:
        while True:
            try:
                code = proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                waited += POLL_S
                if cancel.is_set():
                    raise PrepareCancelled("cancelled while dcm2niix was converting") from None
                if waited > TIMEOUT_S:
                    raise ConversionFailed(f"dcm2niix took more than {TIMEOUT_S} s") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join()
    text = "".join(output)
    made = sorted(work.glob("series*.nii.gz"))
    if code != 0 or not made:
        raise ConversionFailed(f"dcm2niix exit {code}: {_reason(text)}")
    volumes = []
    for nifti in made:
        suffix = nifti.name[len("series") : -len(".nii.gz")]
        sidecar = nifti.with_name(nifti.name[: -len(".nii.gz")] + ".json")
        volumes.append(Volume(nifti, sidecar if sidecar.is_file() else None, suffix, "_Eq" in suffix))
    equalized = [v for v in volumes if v.equalized]
    if equalized:
        # The stack as found misplaces slices (its affine assumes even spacing): keep the equalized volume
        # under the plain name, with the sidecar of the series.
        base = next((v for v in volumes if v.suffix == re.sub(r"_Eq_\d+$", "", equalized[0].suffix)), None)
        sidecar = base.sidecar if base else None
        if sidecar is not None:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
            data["IdcMcpNote"] = (
                "slices were unevenly spaced; dcm2niix interpolated them onto regular spacing "
                "(its _Eq output)"
            )
            sidecar.write_text(json.dumps(data, indent=2), encoding="utf-8")
        kept = [v for v in volumes if not v.equalized and v is not base]
        volumes = [
            Volume(e.nifti, sidecar, re.sub(r"_Eq_\d+$", "", e.suffix), True) for e in equalized
        ] + kept
    return volumes
