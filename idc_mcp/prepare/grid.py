"""The image grid every label is written on: the referenced image's NIfTI (its shape and affine).

NIfTI affines are RAS+, DICOM patient coordinates LPS+: the two differ by the sign of x and y. Label
maps are written with exactly the image's affine and shape, then read back and compared (checked, not
assumed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Grid:
    shape: tuple[int, int, int]
    affine: np.ndarray  # RAS, NIfTI voxel (i, j, k) -> mm
    source: Path  # the image NIfTI

    @property
    def lps_affine(self) -> np.ndarray:
        return LPS_FROM_RAS @ self.affine

    def voxel_of_lps(self, points: np.ndarray) -> np.ndarray:
        """(n, 3) LPS points -> (n, 3) fractional voxel indices (i, j, k)."""
        homogeneous = np.c_[points, np.ones(len(points))]
        return (np.linalg.inv(self.lps_affine) @ homogeneous.T).T[:, :3]


def image_grid(nifti: Path) -> Grid:
    import nibabel as nib

    image: Any = nib.load(nifti)
    shape = tuple(int(n) for n in image.shape[:3])
    return Grid((shape[0], shape[1], shape[2]), np.asarray(image.affine, dtype=float), nifti)


def write_on_grid(array: np.ndarray, grid: Grid, path: Path, slope: float | None = None) -> None:
    """Write `array` (the grid's shape, or its shape plus one axis) with the grid's affine, then read
    the header back and check shape and affine against the image's."""
    import nibabel as nib

    if array.shape[:3] != grid.shape:
        raise ValueError(f"label array {array.shape} is not on the image grid {grid.shape}")
    image = nib.Nifti1Image(array, grid.affine)
    if slope is not None:  # stored values x slope = what readers get (fractions of a FRACTIONAL SEG)
        image.header.set_slope_inter(slope, 0.0)
    image.set_qform(grid.affine, code=1)
    image.set_sform(grid.affine, code=1)
    nib.save(image, path)
    back: Any = nib.load(path)
    if tuple(back.shape[:3]) != grid.shape or not np.allclose(back.affine, grid.affine, atol=1e-4):
        raise ValueError(f"{path.name} was written off the image grid (shape {back.shape}, affine differs)")
