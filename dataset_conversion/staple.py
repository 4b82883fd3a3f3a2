"""STAPLE consensus of several raters' binary masks (Warfield et al. 2004, SimpleITK's STAPLEImageFilter).

STAPLE runs inside the bounding box of the union of all masks padded by ``margin_vox`` voxels:
a thrombus covers < 0.01 % of a head scan, and over the whole volume the background would
dominate both the prior and every rater's specificity.  Outside the box the consensus is 0.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from nnunet_thrombus.masks import dice


def staple_consensus(masks: list[sitk.Image], *, threshold: float = 0.5, margin_vox: int = 5,
                     max_iterations: int = 100) -> tuple[sitk.Image, list[dict]]:
    """Consensus (uint8 0/1, grid of ``masks[0]``) and per-rater stats.

    Each stats dict: ``rater`` (index), ``sensitivity``, ``specificity`` (STAPLE estimates inside the box),
    ``dice_vs_consensus``.  A single mask is returned unchanged (binarised) with Dice 1.
    Raises ``ValueError`` for an empty list or masks on different grids.
    """
    if not masks:
        raise ValueError("staple_consensus needs at least one mask, got 0")
    ref = masks[0]
    for i, m in enumerate(masks[1:], start=1):
        if m.GetSize() != ref.GetSize() or not np.allclose(m.GetSpacing(), ref.GetSpacing(), atol=1e-4) \
                or not np.allclose(m.GetOrigin(), ref.GetOrigin(), atol=1e-3):
            raise ValueError(f"rater mask {i} grid (size {m.GetSize()}, spacing {m.GetSpacing()}) differs from "
                             f"rater 0 (size {ref.GetSize()}, spacing {ref.GetSpacing()})")
    arrays = [sitk.GetArrayFromImage(m) > 0 for m in masks]
    union = np.any(arrays, axis=0)
    consensus = np.zeros(union.shape, dtype=np.uint8)
    stats = []
    if len(masks) == 1 or not union.any():
        consensus[:] = arrays[0] if len(masks) == 1 else 0
        for i, a in enumerate(arrays):
            stats.append({"rater": i, "sensitivity": float("nan"), "specificity": float("nan"),
                          "dice_vs_consensus": dice(a, consensus)})
    else:
        idx = np.argwhere(union)
        lo = np.maximum(idx.min(0) - margin_vox, 0)
        hi = np.minimum(idx.max(0) + margin_vox + 1, union.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        staple = sitk.STAPLEImageFilter()
        staple.SetForegroundValue(1)
        staple.SetMaximumIterations(max_iterations)
        prob = staple.Execute([sitk.GetImageFromArray(a[box].astype(np.uint8)) for a in arrays])
        consensus[box] = sitk.GetArrayFromImage(prob) >= threshold
        sens, spec = staple.GetSensitivity(), staple.GetSpecificity()
        for i, a in enumerate(arrays):
            stats.append({"rater": i, "sensitivity": float(sens[i]), "specificity": float(spec[i]),
                          "dice_vs_consensus": dice(a, consensus)})
    out = sitk.GetImageFromArray(consensus)
    out.CopyInformation(ref)
    return out, stats
