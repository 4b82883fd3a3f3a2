"""Geometry presets and the sampling grid of a synthetic scan.

Conventions: physical coordinates are LPS millimetres (x to the patient's left, y posterior,
z superior), the same as SimpleITK/DICOM. Arrays are indexed ``[z, y, x]``. The anatomy frame equals
the CTA's physical frame; its origin is the centre of the (unscaled) head.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class Grid:
    """A regular voxel grid with identity direction.

    shape_zyx: number of voxels (z, y, x); spacing_xyz: mm (x, y, z); origin_xyz: physical position
    (mm) of the centre of voxel [0, 0, 0].
    """

    shape_zyx: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]

    @classmethod
    def centred(cls, shape_zyx, spacing_xyz, centre_xyz) -> "Grid":
        """Grid whose geometric centre lies at ``centre_xyz`` (mm)."""
        shape_xyz = np.array(shape_zyx[::-1], float)
        origin = np.asarray(centre_xyz, float) - (shape_xyz - 1) / 2 * np.asarray(spacing_xyz, float)
        return cls(tuple(int(s) for s in shape_zyx), tuple(float(s) for s in spacing_xyz),
                   tuple(float(o) for o in origin))

    @property
    def centre_xyz(self) -> np.ndarray:
        shape_xyz = np.array(self.shape_zyx[::-1], float)
        return np.asarray(self.origin_xyz) + (shape_xyz - 1) / 2 * np.asarray(self.spacing_xyz)

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing_xyz))

    def slab_points(self, z0: int, z1: int) -> np.ndarray:
        """Physical centres (mm) of voxels in slices ``z0:z1``: array (3, n) ordered x, y, z, C order [z, y, x]."""
        nz, ny, nx = z1 - z0, self.shape_zyx[1], self.shape_zyx[2]
        sx, sy, sz = self.spacing_xyz
        ox, oy, oz = self.origin_xyz
        x = (ox + sx * np.arange(nx, dtype=np.float32)).astype(np.float32)
        y = (oy + sy * np.arange(ny, dtype=np.float32)).astype(np.float32)
        z = (oz + sz * np.arange(z0, z1, dtype=np.float32)).astype(np.float32)
        pts = np.empty((3, nz, ny, nx), np.float32)
        pts[0] = x[None, None, :]
        pts[1] = y[None, :, None]
        pts[2] = z[:, None, None]
        return pts.reshape(3, -1)

    def to_sitk(self, array: np.ndarray):
        """Wrap a ``[z, y, x]`` array as a SimpleITK image with this grid's geometry."""
        if tuple(array.shape) != tuple(self.shape_zyx):
            raise ValueError(f"array shape {array.shape} does not match grid shape {self.shape_zyx}")
        img = sitk.GetImageFromArray(np.ascontiguousarray(array))
        img.SetSpacing(self.spacing_xyz)
        img.SetOrigin(self.origin_xyz)
        return img


@dataclass(frozen=True)
class Preset:
    """How a phantom is sampled.

    head_scale: linear scale of the head and the arterial tree layout (vessel calibres stay real);
    spacing_zyx: CTA voxel size (mm); shape_zyx: CTA grid; z_centre_mm: physical z (mm) of the grid
    centre (the skull base lies at about -30 mm x head_scale); thick_slice_mm: NCCT slice thickness
    of the thick-slice variant; psf_sigma_mm: Gaussian point-spread function sigma (mm);
    vessel_calibre: multiplier of the arterial radii (1.0 = real calibre).
    """

    name: str
    head_scale: float
    spacing_zyx: tuple[float, float, float]
    shape_zyx: tuple[int, int, int]
    z_centre_mm: float
    thick_slice_mm: float = 5.0
    psf_sigma_mm: float = 0.5
    vessel_calibre: float = 1.0

    def grid(self) -> Grid:
        return Grid.centred(self.shape_zyx, self.spacing_zyx[::-1], (0.0, 0.0, self.z_centre_mm))


PRESETS: dict[str, Preset] = {
    # tests: 32 x 48 x 40 voxels, half-size head, cropped in z around the circle of Willis
    "tiny": Preset("tiny", head_scale=0.45, spacing_zyx=(1.5, 1.5, 1.5), shape_zyx=(32, 48, 40),
                   z_centre_mm=3.0),
    # CPU demo training: 64 x 112 x 96 voxels, half-size head, FOV from the skull base to mid-brain.
    # Arteries (and so clots) at 1.6x real calibre: at real calibre a half-size head's clots are 10-180 voxels,
    # which a CPU-trained network does not pick up within the demo's few hundred iterations (measured: pseudo
    # Dice 0.0 after 100 iterations); the tiny and paper presets keep real calibre.
    "demo": Preset("demo", head_scale=0.5, spacing_zyx=(1.0, 0.9, 0.9), shape_zyx=(64, 112, 96),
                   z_centre_mm=8.0, vessel_calibre=1.6),
    # the paper's resolution: 0.625 x 0.488 x 0.488 mm, 257 x 456 x 436 voxels, full-size head
    "paper": Preset("paper", head_scale=1.0, spacing_zyx=(0.625, 0.488, 0.488), shape_zyx=(257, 456, 436),
                    z_centre_mm=25.0, psf_sigma_mm=0.4),
}


def get_preset(name: str) -> Preset:
    """Return the preset called ``name`` (tiny, demo or paper)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
