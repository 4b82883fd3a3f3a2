"""Overlap and surface-distance metrics between a predicted and a reference mask.

Conventions (DESIGN.md sec 5, docs/metrics.md): masks are (z, y, x) arrays as
``SimpleITK.GetArrayFromImage`` gives, nonzero = foreground; ``spacing`` is (z, y, x) in mm.

- Surface of a mask: the mask minus its binary erosion with the 6-connected (face) structuring
  element, i.e. foreground voxels with at least one face neighbour in the background; voxels on the
  array border count as surface (outside is background).
- Distances: Euclidean, between surface voxel centres, in mm with the voxel spacing
  (``scipy.ndimage.distance_transform_edt(sampling=spacing)``), computed on the union bounding box
  of both masks grown by ``MARGIN`` voxels, never on the whole volume.
- HD95 / ASSD: 95th percentile / mean of the pooled set of both directed distances (pred surface to
  ref surface and ref surface to pred surface), NaN when either mask is empty.
- Dice: both empty = 1.0, one empty = 0.0. NSD (normalised surface Dice, Nikolov et al. 2021) at
  tolerance tau: fraction of both surfaces lying within tau of the other surface; both empty = 1.0,
  one empty = 0.0.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nnunet_thrombus.masks import FACE_STRUCTURE, dice

MARGIN = 2


def _pair(pred, ref, spacing):
    a = np.asarray(pred)
    b = np.asarray(ref)
    if a.ndim != 3 or a.shape != b.shape:
        raise ValueError(f"pred and ref must be 3D arrays of one shape, got {a.shape} and {b.shape}")
    sp = np.asarray(spacing, dtype=float).reshape(-1)
    if sp.size != 3 or np.any(sp <= 0) or not np.all(np.isfinite(sp)):
        raise ValueError(f"spacing must be 3 positive (z, y, x) values in mm, got {spacing!r}")
    return (a if a.dtype == bool else a != 0), (b if b.dtype == bool else b != 0), sp


def surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels of a bool (z, y, x) mask: mask minus its 6-connected erosion."""
    return mask & ~ndimage.binary_erosion(mask, structure=FACE_STRUCTURE, border_value=0)


def _crop(a: np.ndarray, b: np.ndarray):
    """Union bounding box grown by MARGIN voxels; returns cropped (a, b), padded with background
    where the box meets the array border so the border keeps counting as surface."""
    union = a | b
    box = []
    for axis in range(3):
        hit = np.flatnonzero(union.any(axis=tuple(x for x in range(3) if x != axis)))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    box = tuple(box)
    pad = [(MARGIN, MARGIN)] * 3
    return np.pad(a[box], pad), np.pad(b[box], pad)


def surface_distances(pred, ref, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: (pred surface -> ref surface, ref surface -> pred surface).

    Both arrays are empty when either mask is empty.
    """
    a, b, sp = _pair(pred, ref, spacing)
    if not a.any() or not b.any():
        return np.zeros(0), np.zeros(0)
    a, b = _crop(a, b)
    sa, sb = surface(a), surface(b)
    dist_to_b = ndimage.distance_transform_edt(~sb, sampling=sp)
    dist_to_a = ndimage.distance_transform_edt(~sa, sampling=sp)
    return dist_to_b[sa], dist_to_a[sb]


def hd95_mm(pred, ref, spacing) -> float:
    """95th percentile of the pooled both-direction surface distances, mm (NaN if either is empty)."""
    return all_metrics(pred, ref, spacing)["hd95_mm"]


def assd_mm(pred, ref, spacing) -> float:
    """Mean of the pooled both-direction surface distances, mm (NaN if either is empty)."""
    return all_metrics(pred, ref, spacing)["assd_mm"]


def nsd(pred, ref, spacing, tolerance_mm: float = 1.0) -> float:
    """Normalised surface Dice at ``tolerance_mm``; both empty 1.0, one empty 0.0."""
    return all_metrics(pred, ref, spacing, tolerance_mm)["nsd"]


def all_metrics(pred, ref, spacing, tolerance_mm: float = 1.0) -> dict:
    """Dice, HD95, ASSD and NSD in one pass (one pair of distance transforms).

    Args:
        pred, ref: (z, y, x) masks of one shape.
        spacing: (z, y, x) mm.
        tolerance_mm: NSD tolerance in mm.

    Returns:
        {"dice", "hd95_mm", "assd_mm", "nsd"}.
    """
    if not tolerance_mm >= 0:
        raise ValueError(f"tolerance_mm must be >= 0, got {tolerance_mm}")
    a, b, sp = _pair(pred, ref, spacing)
    d = dice(a, b)
    empty_a, empty_b = not a.any(), not b.any()
    if empty_a or empty_b:
        nan = float("nan")
        return {"dice": d, "hd95_mm": nan, "assd_mm": nan, "nsd": 1.0 if empty_a and empty_b else 0.0}
    d_ab, d_ba = surface_distances(a, b, sp)
    pooled = np.concatenate([d_ab, d_ba])
    within = np.count_nonzero(d_ab <= tolerance_mm) + np.count_nonzero(d_ba <= tolerance_mm)
    return {"dice": d, "hd95_mm": float(np.percentile(pooled, 95)), "assd_mm": float(pooled.mean()),
            "nsd": float(within / pooled.size)}
