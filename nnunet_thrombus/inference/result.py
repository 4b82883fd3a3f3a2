"""What one cascade prediction returns; torch-free, so weight-free predictors (``hu_threshold``) need no torch."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class CascadeResult:
    """Output on the input grid (Z, Y, X): thrombus probability (float32), mask (uint8), and bookkeeping."""

    probability: np.ndarray
    segmentation: np.ndarray
    coarse_probability: np.ndarray
    timings_s: dict = field(default_factory=dict)
    fine_tiles: tuple = (0, 0)
    fine_placement: str = "full"
    roi_fallback: bool = False
    folds: tuple = ()
    #: with two or more folds: {"std": per-voxel std of the folds' probabilities, "votes": folds with p > 0.5 (both
    #: Z, Y, X), "n_folds"} (``fold_ensemble.FoldSpread``); None otherwise
    fold_spread: dict | None = None
