"""Which way a clot runs: its principal axis in patient space, and the artery near the carotid T it follows.

A clot fills the lumen of its artery, so an elongated clot's long axis is the artery's local direction. Near the
carotid terminus three arteries leave in clearly different directions (anterior circulation of an adult head,
each side mirrored to the other):

- the supraclinoid ICA ascends, tilted backwards (superior and posterior);
- the A1 runs medially and forwards, toward the anterior communicating artery above the optic chiasm;
- the M1 runs laterally, toward the Sylvian fissure, nearly horizontal.

``artery_at_carotid_t`` compares a clot's axis with these three directions, written in a side-free frame
(lateral, anterior, superior), and returns the closest. The directions are anatomy, not fitted numbers; they are
60-75 degrees apart, so a head pitched by 20 degrees does not swap them. A clot shorter than
``MIN_ELONGATION`` times its width has no usable axis (None).

Conventions: masks are (z, y, x) arrays; spacing (z, y, x) mm; patient coordinates LPS (+x patient left,
+y posterior, +z superior), as ``measure.location.ImageGeometry``.
"""
from __future__ import annotations

import numpy as np

from nnunet_thrombus.measure._arrays import as_mask
from nnunet_thrombus.measure.location import ImageGeometry

#: unit directions (lateral, anterior, superior) of the arteries that leave the carotid T
ARTERY_DIRECTIONS = {
    "ICA": (0.0, -0.6, 0.8),    # supraclinoid ICA: up and backwards (sign-free: the axis has no head or tail)
    "A1": (-0.6, 0.75, 0.28),   # medially, forwards, slightly up
    "M1": (0.95, 0.0, 0.31),    # laterally, slightly up
}
#: clot length / mean diameter below which the axis is not used: a cylinder 1.2 diameters long has an axial second
#: moment (L^2 / 12) about twice its radial one (D^2 / 16); a stub as long as it is wide has no direction
MIN_ELONGATION = 1.2
#: the closest artery must beat the second by this much |cosine|, else the course is undecided (None)
MIN_MARGIN = 0.1


def principal_axis_lps(mask, geometry: ImageGeometry) -> tuple[float, float, float] | None:
    """Unit vector (x, y, z) in patient LPS along the mask's longest extent (first principal component of its
    voxel centres in mm), sign chosen with x >= 0; None for fewer than 2 voxels."""
    m = as_mask(mask)
    idx = np.argwhere(m)
    if len(idx) < 2:
        return None
    pts = geometry.index_to_patient(idx.astype(float))
    pts = pts - pts.mean(axis=0)
    _, vecs = np.linalg.eigh(pts.T @ pts)
    axis = vecs[:, -1]
    if axis[0] < 0:
        axis = -axis
    return tuple(float(v) for v in axis)


def to_side_frame(axis_lps, side: str) -> np.ndarray:
    """Patient LPS direction -> (lateral, anterior, superior) for a clot on ``side`` ("L" or "R")."""
    x, y, z = (float(v) for v in axis_lps)
    if side not in ("L", "R"):
        raise ValueError(f"side must be 'L' or 'R', got {side!r}")
    return np.array([x if side == "L" else -x, -y, z])


def artery_at_carotid_t(axis_lps, side: str, elongation: float) -> tuple[str | None, dict]:
    """The artery near the carotid T whose direction the clot's axis follows: "ICA", "A1", "M1", or None when
    the clot is too stubby (``elongation`` = length / mean diameter < ``MIN_ELONGATION``) or two arteries fit
    about equally (margin < ``MIN_MARGIN``). Also returns |cosine| to each artery."""
    if axis_lps is None or elongation is None or not np.isfinite(elongation):
        return None, {}
    v = to_side_frame(axis_lps, side)
    v = v / max(float(np.linalg.norm(v)), 1e-12)
    cos = {name: abs(float(np.dot(v, np.asarray(d) / np.linalg.norm(d)))) for name, d in ARTERY_DIRECTIONS.items()}
    if elongation < MIN_ELONGATION:
        return None, cos
    ranked = sorted(cos, key=cos.get, reverse=True)
    if cos[ranked[0]] - cos[ranked[1]] < MIN_MARGIN:
        return None, cos
    return ranked[0], cos
