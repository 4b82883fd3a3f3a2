"""Geometry of a CT series from its frames: slice order along the normal, slice spacing (mm), orientation, and the
checks that refuse a stack that cannot be a volume or resample a gantry-tilted one.

``slice_geometry`` reads every frame's ImagePositionPatient and ImageOrientationPatient: duplicate or missing
slices, uneven spacing, a changing orientation or a non-linear drift (non-uniform tilt) are refused with a
``ScanError``; a uniform gantry tilt (slices stacked along a direction that is not their normal, a sheared grid) is
measured, and ``deshear`` resamples such a stack onto an orthogonal grid.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dataset_conversion.dicom_scan import Frame, ScanError, slice_normal

#: relative tolerance on slice gaps before a series counts as having missing slices / uneven spacing
SPACING_TOLERANCE = 0.05
#: in-plane drift (pixels) over the whole series below which a series is read as untilted
MAX_DRIFT_PX = 0.25
#: largest deviation (mm, and fraction of a pixel) of a slice from the straight line of a uniform tilt
TILT_LINE_TOLERANCE_MM = 0.1
#: HU written where a resampled (tilt-corrected) grid lies outside the scanned field of view (air)
OUTSIDE_FOV_HU = -1024


def slice_geometry(folder: Path, frames: list[Frame]) -> dict:
    """Slice order and grid of ``frames`` (see the module doc); ``folder`` names the series in errors.

    Returns a dict: order (frame indices along the normal), step (slice spacing, mm), normal / row_dir / col_dir
    ((3,) unit vectors, LPS), origin ((3,) mm, first slice), dist ((n,) mm along the normal from the first slice),
    drift_mm_per_mm ((2,) in-plane drift along row_dir / col_dir per mm along the normal), tilted (drift over the
    series above ``MAX_DRIFT_PX``), tilt_deg (gantry tilt, degrees). Raises ``ScanError`` on bad geometry."""
    orient = frames[0].orientation
    for f in frames:
        if np.max(np.abs(f.orientation - orient)) > 1e-3:
            raise ScanError(f"{folder}: image orientation changes between slices ({f.path.name}): non-uniform "
                            "gantry tilt or mixed reconstructions; export one uniformly oriented series")
        if (f.rows, f.cols) != (frames[0].rows, frames[0].cols) or \
                not np.allclose(f.spacing_rc, frames[0].spacing_rc, rtol=1e-3):
            raise ScanError(f"{folder}: image size or pixel spacing changes between slices ({f.path.name})")
    row_dir, col_dir = orient[:3], orient[3:]
    normal = slice_normal(orient)
    positions = np.asarray([f.position for f in frames])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    gaps = np.diff(along)
    if np.any(gaps < 1e-3):
        dup = int(np.sum(gaps < 1e-3))
        raise ScanError(f"{folder}: {dup} duplicate slice position(s) in the series; export it again")
    step = float(np.median(gaps))
    bad = np.abs(gaps - step) > SPACING_TOLERANCE * step
    if np.any(bad):
        kind = "missing slice(s)" if np.all(gaps[bad] > step) else "inconsistent slice spacing"
        raise ScanError(f"{folder}: {kind}: slice gaps range {gaps.min():.3f}-{gaps.max():.3f} mm "
                        f"(median {step:.3f} mm) at {int(bad.sum())} place(s)")
    rel = positions - positions[0]
    inplane = np.stack([rel @ row_dir, rel @ col_dir], axis=1)  # (n, 2) mm: drift along rows / columns
    dist = along - along[0]
    slope = (inplane * dist[:, None]).sum(0) / max(float((dist ** 2).sum()), 1e-12)  # mm drift per mm along normal
    resid = np.abs(inplane - dist[:, None] * slope[None, :]).max()
    pixel = min(frames[0].spacing_rc)
    if resid > max(TILT_LINE_TOLERANCE_MM, 0.1 * pixel):
        raise ScanError(f"{folder}: slice positions do not lie on a straight line (off by up to {resid:.2f} mm): "
                        "non-uniform gantry tilt or a moving table; cannot be resampled safely")
    drift_px = np.abs(slope * dist[-1]) / np.array([frames[0].spacing_rc[1], frames[0].spacing_rc[0]])
    tilt_deg = float(np.degrees(np.arctan(np.linalg.norm(slope))))
    return {"order": order, "step": step, "normal": normal, "row_dir": row_dir, "col_dir": col_dir,
            "drift_mm_per_mm": slope, "tilted": bool(drift_px.max() > MAX_DRIFT_PX), "tilt_deg": tilt_deg,
            "origin": positions[0], "dist": dist}



def deshear(hu: np.ndarray, geometry: dict, spacing_rc: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, int]:
    """Resample a sheared (gantry-tilted) stack onto an orthogonal grid.

    hu: (n, rows, cols) int16 slices in order along the normal. Every slice stays a plane of the output (no
    interpolation across slices); each is shifted in-plane (bilinear) by its drift so that one output voxel column
    runs along the slice normal. The in-plane extent grows to hold every shifted slice (outside the field of view:
    ``OUTSIDE_FOV_HU``). Returns ``(volume (n, rows', cols'), in-plane origin offset (u0, v0) mm along row/column
    directions, rows' )``."""
    n, rows, cols = hu.shape
    dr, dc = spacing_rc  # between rows (along col_dir), between columns (along row_dir)
    shift = geometry["dist"][:, None] * geometry["drift_mm_per_mm"][None, :]  # (n, 2) mm along (row_dir, col_dir)
    u = shift[:, 0]
    v = shift[:, 1]
    u0, v0 = float(min(u.min(), 0.0)), float(min(v.min(), 0.0))
    cols_out = int(np.ceil((max(u.max(), 0.0) - u0) / dc - 1e-6)) + cols
    rows_out = int(np.ceil((max(v.max(), 0.0) - v0) / dr - 1e-6)) + rows
    out = np.empty((n, rows_out, cols_out), np.int16)
    for k in range(n):
        offset = [(v0 - v[k]) / dr, (u0 - u[k]) / dc]  # output index + offset = source index
        plane = _shift_linear(hu[k].astype(np.float32), offset[0], rows_out, axis=0)
        plane = _shift_linear(plane, offset[1], cols_out, axis=1)
        out[k] = np.clip(np.rint(plane), -32768, 32767)
    return out, np.array([u0, v0]), rows_out


def _shift_linear(a: np.ndarray, offset: float, n_out: int, axis: int) -> np.ndarray:
    """``out[i] = a[i + offset]`` along ``axis`` for i in 0..n_out-1, linear between samples (one separable pass of
    the bilinear in-plane shift). Where ``i + offset`` lies outside the sampled field ``[0, n - 1]`` the output is
    ``OUTSIDE_FOV_HU``: no blend of the edge sample with the fill value, so the rim of the field keeps measured HU
    and everything beyond it is recognisably outside the field of view (as scipy's ``affine_transform`` with
    ``mode="constant"``, order 1)."""
    n = a.shape[axis]
    i0 = int(np.floor(offset))
    frac = np.float32(offset - i0)
    idx = np.arange(i0, i0 + n_out + 1)
    taken = np.take(a, np.clip(idx, 0, n - 1), axis=axis)
    lo = [slice(None)] * a.ndim
    hi = [slice(None)] * a.ndim
    lo[axis], hi[axis] = slice(0, n_out), slice(1, n_out + 1)
    out = (1 - frac) * taken[tuple(lo)] + frac * taken[tuple(hi)]
    source = idx[:n_out] + float(frac)  # source coordinate of each output sample
    outside = (source < -1e-6) | (source > n - 1 + 1e-6)
    if outside.any():
        index = [slice(None)] * a.ndim
        index[axis] = outside
        out[tuple(index)] = OUTSIDE_FOV_HU
    return out
