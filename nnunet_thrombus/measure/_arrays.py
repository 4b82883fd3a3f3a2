"""Shared input checks and small morphology helpers for ``measure``.

Convention: arrays are (z, y, x) as ``SimpleITK.GetArrayFromImage`` gives; spacing is (z, y, x) in mm.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nnunet_thrombus.masks import FACE_STRUCTURE, label_components



def as_mask(mask, name: str = "mask") -> np.ndarray:
    """Return ``mask`` as a 3D bool array (z, y, x); nonzero voxels are foreground."""
    arr = np.asarray(mask)
    if arr.ndim != 3:
        raise ValueError(f"{name} must be a 3D (z, y, x) array, got shape {arr.shape}")
    return arr != 0 if arr.dtype != bool else arr


def check_spacing(spacing) -> np.ndarray:
    """Return spacing as a float array of 3 positive values, (z, y, x) in mm."""
    sp = np.asarray(spacing, dtype=float).reshape(-1)
    if sp.size != 3 or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(f"spacing must be 3 positive (z, y, x) values in mm, got {spacing!r}")
    return sp


def check_same_shape(**arrays) -> None:
    """Raise ValueError naming the shapes when the given arrays differ in shape."""
    shapes = {k: np.shape(v) for k, v in arrays.items() if v is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"arrays must share one (z, y, x) shape, got {shapes}")


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a bool (z, y, x) mask (empty mask -> empty mask)."""
    labels, n = label_components(mask)
    if n <= 1:
        return mask.copy()
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    return labels == int(np.argmax(counts))


def eroded_core(mask: np.ndarray) -> tuple[np.ndarray, bool]:
    """Erode a bool (z, y, x) mask by one voxel (6-connected) where possible.

    Returns (core, eroded): the eroded mask when it keeps at least one voxel, otherwise the mask
    itself with ``eroded=False`` (thin clots one or two voxels across have no core).
    """
    core = ndimage.binary_erosion(mask, structure=FACE_STRUCTURE, border_value=0)
    if core.any():
        return core, True
    return mask, False


def bbox_slices(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice, slice] | None:
    """Bounding box of the nonzero voxels of a (z, y, x) mask, grown by ``margin`` voxels and
    clipped to the array; None for an empty mask. Uses per-axis ``any`` so it is fast on big volumes."""
    out = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        if hit.size == 0:
            return None
        lo = max(int(hit[0]) - margin, 0)
        hi = min(int(hit[-1]) + 1 + margin, mask.shape[axis])
        out.append(slice(lo, hi))
    return tuple(out)
