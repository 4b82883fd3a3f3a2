"""Thrombus density (NCCT HU), relative density and perviousness (CTA - NCCT).

Convention: all arrays are (z, y, x) as ``SimpleITK.GetArrayFromImage`` gives, on one grid (the CTA
grid after registration); images are in HU; masks are nonzero inside. The clot core is the mask
eroded by one voxel (6-connected) where that leaves any voxel, which limits partial volume from the
contrast-filled lumen and the vessel wall around the clot.
"""
from __future__ import annotations

import numpy as np

from nnunet_thrombus.measure._arrays import as_mask, check_same_shape, eroded_core


def _region(mask, erode: bool) -> tuple[np.ndarray, bool]:
    m = as_mask(mask)
    if not m.any():
        raise ValueError("mask is empty: density is undefined without thrombus voxels")
    return eroded_core(m) if erode else (m, False)


def density_hu(ncct, mask, erode: bool = True) -> dict:
    """Mean and median NCCT HU inside the thrombus (core).

    Args:
        ncct: (z, y, x) NCCT in HU.
        mask: (z, y, x) thrombus mask, same shape.
        erode: use the one-voxel eroded core where possible.

    Returns:
        {"mean_hu", "median_hu", "n_voxels", "eroded"}; ``eroded`` is False when erosion was off
        or would have removed every voxel.
    """
    check_same_shape(ncct=ncct, mask=mask)
    region, eroded = _region(mask, erode)
    values = np.asarray(ncct, dtype=np.float64)[region]
    return {"mean_hu": float(values.mean()), "median_hu": float(np.median(values)),
            "n_voxels": int(values.size), "eroded": bool(eroded)}


def mirror_x(mask, brain_mask) -> np.ndarray:
    """Mirror a (z, y, x) mask across the brain's mid-sagittal plane.

    The plane is taken as x = x-centroid of ``brain_mask`` (array index units), which assumes the
    x array axis is patient left-right (identity-like direction, as after nnU-Net conversion of an
    axial head CT). Mirrored indices are rounded; voxels falling outside the array are dropped.
    """
    m = as_mask(mask)
    brain = as_mask(brain_mask, "brain_mask")
    check_same_shape(mask=m, brain_mask=brain)
    if not brain.any():
        raise ValueError("brain_mask is empty: the mid-sagittal plane is undefined")
    cx = _x_centroid(brain)
    z, y, x = np.nonzero(m)
    xm = np.rint(2.0 * cx - x).astype(int)
    ok = (xm >= 0) & (xm < m.shape[2])
    out = np.zeros_like(m)
    out[z[ok], y[ok], xm[ok]] = True
    return out


def _x_centroid(brain: np.ndarray) -> float:
    counts = brain.sum(axis=(0, 1), dtype=np.int64)
    return float((counts * np.arange(brain.shape[2])).sum() / counts.sum())


def relative_density(ncct, mask, brain_mask, direction=None, erode: bool = True) -> dict:
    """Thrombus NCCT density relative to the mirrored contralateral region.

    The contralateral region is the (eroded) clot mirrored across the brain mask's x-centroid,
    minus any thrombus voxels, inside the brain mask.

    Args:
        ncct: (z, y, x) NCCT in HU.
        mask: (z, y, x) thrombus mask.
        brain_mask: (z, y, x) brain mask (sets the mid-sagittal plane).
        direction: optional ITK direction (9 values, row-major); when given it must map the x array
            axis onto patient x (left-right), otherwise mirroring along x would be wrong.
        erode: use the one-voxel eroded core where possible.

    Returns:
        {"thrombus_mean_hu", "contralateral_mean_hu", "ratio" (thrombus / contralateral),
        "difference_hu" (thrombus - contralateral), "n_contralateral"}; ratio and contralateral
        values are NaN when the mirrored region has no voxel inside the brain.
    """
    check_same_shape(ncct=ncct, mask=mask, brain_mask=brain_mask)
    if direction is not None:
        d = np.asarray(direction, dtype=float).reshape(3, 3)
        if abs(abs(d[0, 0]) - 1.0) > 1e-3:
            raise ValueError(f"direction must map the x array axis onto patient left-right for mirroring, "
                             f"got {tuple(np.round(d.ravel(), 4))}")
    region, _ = _region(mask, erode)
    img = np.asarray(ncct, dtype=np.float64)
    contra = mirror_x(region, brain_mask) & ~as_mask(mask) & as_mask(brain_mask, "brain_mask")
    clot = float(img[region].mean())
    if not contra.any():
        nan = float("nan")
        return {"thrombus_mean_hu": clot, "contralateral_mean_hu": nan, "ratio": nan,
                "difference_hu": nan, "n_contralateral": 0}
    other = float(img[contra].mean())
    ratio = clot / other if other != 0 else float("nan")
    return {"thrombus_mean_hu": clot, "contralateral_mean_hu": other, "ratio": float(ratio),
            "difference_hu": clot - other, "n_contralateral": int(contra.sum())}


def cta_hu(cta, mask, erode: bool = True) -> float:
    """Mean CTA HU inside the thrombus core ((z, y, x) arrays, same convention as ``density_hu``)."""
    check_same_shape(cta=cta, mask=mask)
    region, _ = _region(mask, erode)
    return float(np.asarray(cta, dtype=np.float64)[region].mean())


def perviousness_hu(cta, ncct, mask, erode: bool = True) -> float:
    """Thrombus perviousness: mean CTA HU minus mean NCCT HU inside the clot core.

    Args:
        cta: (z, y, x) CTA in HU.
        ncct: (z, y, x) NCCT in HU, registered to the CTA grid.
        mask: (z, y, x) thrombus mask.
        erode: use the one-voxel eroded core where possible (limits partial volume from the
            contrast-filled lumen next to the clot).

    Returns:
        Perviousness in HU (contrast uptake of the clot).
    """
    check_same_shape(cta=cta, ncct=ncct, mask=mask)
    region, _ = _region(mask, erode)
    return float(np.asarray(cta, dtype=np.float64)[region].mean()
                 - np.asarray(ncct, dtype=np.float64)[region].mean())
