"""A thresholding thrombus detector: the classical baseline the paper argues against, and a model-free predictor.

Hyperdense-clot thresholding on NCCT (about 50-80 HU) has long been used for thrombus density work; its weakness is
that it needs a contrast-filled lumen to tell clot from the dense wall of a normal artery. This predictor marks NCCT
voxels in ``[lo, hi]`` HU that are not contrast-filled on CTA (< ``cta_max`` HU), inside the brain, and keeps
26-connected components of at least ``min_voxels``. It needs no weights, so tests and the Ray backend's equality check can run
the whole predict pipeline without a trained model. It is not a substitute for the network.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nnunet_thrombus.inference.result import CascadeResult
from nnunet_thrombus.masks import label_components


@dataclass(frozen=True)
class HUThresholdPredictor:
    """``predict(images (2, Z, Y, X) [CTA, NCCT] HU, spacing) -> CascadeResult`` by fixed HU windows."""

    ncct_lo: float = 50.0
    ncct_hi: float = 90.0
    cta_max: float = 150.0
    min_voxels: int = 4

    def predict(self, images: np.ndarray, spacing) -> CascadeResult:
        if images.ndim != 4 or images.shape[0] != 2:
            raise ValueError(f"images must be (2, Z, Y, X) [CTA, NCCT]; got shape {images.shape}")
        cta, ncct = images[0], images[1]
        inside = cta > -1000
        cand = (ncct >= self.ncct_lo) & (ncct <= self.ncct_hi) & (cta < self.cta_max) & inside
        lab, n = label_components(cand)
        if n:
            sizes = ndimage.sum_labels(cand, lab, index=np.arange(1, n + 1))
            cand = np.isin(lab, 1 + np.flatnonzero(sizes >= self.min_voxels))
        seg = cand.astype(np.uint8)
        prob = seg.astype(np.float32)
        return CascadeResult(probability=prob, segmentation=seg, coarse_probability=prob,
                             timings_s={"coarse": 0.0, "fine": 0.0, "export": 0.0}, folds=("threshold",))
