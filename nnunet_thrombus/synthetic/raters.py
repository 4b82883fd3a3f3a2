"""Plausible disagreement between human raters, derived from the ground-truth thrombus mask.

Each simulated rater applies a random subset of: a boundary shift (one-voxel dilation or erosion),
a missed end (the last 10-30% of the clot along its principal axis left out) and extra voxels
(a small blob added at the clot surface). Results are never empty when the truth is not empty.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def rater_masks(label: np.ndarray, spacing_zyx, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``k`` rater masks (uint8, same shape as ``label`` [z, y, x]) for a 0/1 thrombus ``label``."""
    if k < 0:
        raise ValueError(f"number of raters must be >= 0, got {k}")
    truth = label.astype(bool)
    out = []
    ball = ndimage.generate_binary_structure(3, 1)
    for _ in range(k):
        m = truth.copy()
        if not truth.any():
            out.append(m.astype(np.uint8))
            continue
        u = rng.random(3)
        if u[0] < 0.35:
            m = ndimage.binary_dilation(m, ball)
        elif u[0] < 0.55:
            eroded = ndimage.binary_erosion(m, ball)
            m = eroded if eroded.sum() > 0.3 * truth.sum() else m
        if u[1] < 0.4:
            pts = np.argwhere(m) * np.asarray(spacing_zyx, float)
            centred = pts - pts.mean(0)
            axis = np.linalg.svd(centred, full_matrices=False)[2][0]
            proj = centred @ axis
            cut = rng.uniform(0.1, 0.3) * (proj.max() - proj.min())
            keep = proj < proj.max() - cut if rng.random() < 0.5 else proj > proj.min() + cut
            if keep.sum() > 0:
                m[tuple(np.argwhere(m)[~keep].T)] = False
        if u[2] < 0.4:
            surface = np.argwhere(ndimage.binary_dilation(m, ball) & ~m)
            if len(surface):
                seed = surface[rng.integers(len(surface))]
                blob = np.zeros_like(m)
                blob[tuple(seed)] = True
                m |= ndimage.binary_dilation(blob, ball, iterations=1)
        out.append(m.astype(np.uint8))
    return out
