"""prepare_dataset's conversion against the bare dcm2niix binary on the same series, in one run.

A synthetic CT series (default 1,000 slices of 512 x 512 int16, ~525 MB of DICOM, in shuffled files;
a body-like phantom with noise, so that it compresses as CT does)
and a SEG over it (two segments on 40 slices) are written to a temporary folder. Then, alternating,
3 times each (median):
  - bare: the `dcm2niix` binary of the wheel on the folder (`-z y -b y -ba y`, as prepare runs it);
  - ours: prepare's conversion of the same series (`prepare.convert.Run`: fingerprint of the inputs,
    dcm2niix into a private folder, atomic placement, SHA-256 of the outputs for reruns), then the SEG
    to a label map on the image grid (highdicom + nibabel, read back and checked).
Each runs in its own process; the peak resident memory of the whole process tree (Python and the
dcm2niix child) is sampled every 20 ms with psutil. Prints seconds, throughput ratio (goal >= 0.9x for
the image conversion) and peak memory (goal <= 1 GiB).

Run: /work/main/.venv/bin/python benchmarks/bench_prepare.py [--slices 1000] [--size 512]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_series(folder: Path, slices: int, size: int) -> tuple[Path, Path]:
    import random

    from pydicom.uid import generate_uid

    from tests import prepare_fixture as f

    f.ROWS = f.COLS = size
    g = f.Geometry(
        (1, 0, 0), (0, 1, 0), (0.7, 0.7), [(-180.0, -180.0, -400.0 + 0.8 * k) for k in range(slices)]
    )
    ct_dir = folder / "ct"
    ct_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    datasets = f.make_ct(g)
    order = list(range(slices))
    random.Random(1).shuffle(order)
    # A body-like phantom (air, a soft-tissue ellipse, a bone ring) with noise: it compresses as CT does.
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    radius = (xx / 0.42) ** 2 + (yy / 0.32) ** 2
    body = np.where(radius < 1, 40, -1000) + np.where((radius > 0.8) & (radius < 0.9), 700, 0)
    for i in order:
        ds = datasets[i]
        noise = rng.integers(-30, 30, (size, size))
        ds.PixelData = (body + noise + 1024).astype(np.int16).tobytes()  # stored = HU - intercept
        (ct_dir / f"{generate_uid()[-16:]}.dcm").write_bytes(f.save(ds))
    mask = np.zeros((slices, size, size), np.uint8)
    mid = slices // 2
    mask[mid - 20 : mid + 20, size // 4 : size // 2, size // 4 : size // 2] = 1
    mask[mid - 5 : mid + 5, size // 2 + 10 : size // 2 + 60, size // 2 + 10 : size // 2 + 60] = 2
    seg_dir = folder / "seg"
    seg_dir.mkdir()
    (seg_dir / "seg.dcm").write_bytes(f.save(f.make_seg(datasets, mask, ["Tumour", "Node"])))
    return ct_dir, seg_dir / "seg.dcm"


def child(mode: str, ct_dir: Path, seg: Path, out: Path) -> None:
    """One measured run, in its own process (timed after its imports: a server has them loaded)."""
    import dcm2niix

    from idc_mcp.download.plan import SeriesPlan
    from idc_mcp.prepare.convert import Run
    from idc_mcp.prepare.plan import Case

    started = time.perf_counter()
    if mode == "bare":
        subprocess.run(
            [dcm2niix.bin, "-z", "y", "-b", "y", "-ba", "y", "-f", "series", "-o", str(out), str(ct_dir)],
            check=True,
            capture_output=True,
        )
        image_s, label_s = time.perf_counter() - started, 0.0
    else:

        def plan(uid: str, modality: str) -> SeriesPlan:
            return SeriesPlan(uid, "bench", "P1", "S1", modality, None, None, None, "b", uid, 0, "")

        ct, sg = plan("1.2.3", "CT"), plan("1.2.4", "SEG")
        case = Case("bench", "bench", "P1", "S1", [ct])
        files = {ct.series_uid: sorted(ct_dir.iterdir()), sg.series_uid: [seg]}
        folders = {ct.series_uid: ct_dir, sg.series_uid: seg.parent}
        run = Run(out, out, {}, files, folders, threading.Event(), lambda: None)
        run.convert_case(case)
        assert not run.failures, run.failures
        image_s = time.perf_counter() - started
        # the SEG's reference is the bench CT: point it there, as the engine does from the file
        import idc_mcp.prepare.convert as convert_module

        convert_module.Run._reference = lambda self, s: ct.series_uid  # type: ignore[method-assign]
        case.series.append(sg)
        run.converted = 0
        started = time.perf_counter()
        run._one(case, sg, "label")
        label_s = time.perf_counter() - started
    print(json.dumps({"image_s": image_s, "label_s": label_s}))


def measure(mode: str, ct_dir: Path, seg: Path, work: Path) -> tuple[dict, int]:
    out = work / f"out-{mode}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", mode, str(ct_dir), str(seg), str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    output = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise SystemExit(f"{mode} run failed ({proc.returncode})")
    return json.loads(output.strip().splitlines()[-1]), peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=1000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=4, metavar=("MODE", "CT", "SEG", "OUT"))
    args = parser.parse_args()
    if args.child:
        mode, ct_dir, seg, out = args.child
        child(mode, Path(ct_dir), Path(seg), Path(out))
        return
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        ct_dir, seg = make_series(work, args.slices, args.size)
        size = sum(p.stat().st_size for p in ct_dir.iterdir())
        print(f"series: {args.slices} slices of {args.size}^2, {size / 1e6:.0f} MB DICOM "
              f"(made in {time.perf_counter() - started:.0f} s)")  # fmt: skip
        times: dict[str, list[float]] = {"bare": [], "ours": [], "label": []}
        peaks: dict[str, int] = {"bare": 0, "ours": 0}
        for _ in range(args.repeat):
            for mode in ("bare", "ours"):
                result, peak = measure(mode, ct_dir, seg, work)
                times[mode].append(result["image_s"])
                peaks[mode] = max(peaks[mode], peak)
                if mode == "ours":
                    times["label"].append(result["label_s"])
        bare, ours = statistics.median(times["bare"]), statistics.median(times["ours"])
        for label, key, value in (("bare dcm2niix", "bare", bare), ("prepare image", "ours", ours)):
            runs = ", ".join(f"{t:.2f}" for t in times[key])
            print(f"{label}: {value:.2f} s (median of {args.repeat}: {runs})")
        print(f"throughput ours / bare: {bare / ours:.2f}x (goal >= 0.9x)")
        print(f"prepare SEG -> label map on the image grid: {statistics.median(times['label']):.2f} s")
        print(f"peak RSS of the process tree: bare {peaks['bare'] / 2**20:.0f} MiB, "
              f"prepare (image + SEG) {peaks['ours'] / 2**20:.0f} MiB (goal <= 1024 MiB)")  # fmt: skip


if __name__ == "__main__":
    main()
