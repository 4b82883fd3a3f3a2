"""Thrombus volume in mm^3.

Convention: ``mask`` is a (z, y, x) array (``SimpleITK.GetArrayFromImage`` order), nonzero =
thrombus; ``spacing`` is (z, y, x) in mm.
"""
from __future__ import annotations

import numpy as np

from nnunet_thrombus.measure._arrays import as_mask, check_spacing


def volume_mm3(mask, spacing) -> float:
    """Voxel count x voxel volume.

    Args:
        mask: (z, y, x) array, nonzero voxels are thrombus.
        spacing: (z, y, x) voxel size in mm.

    Returns:
        Volume in mm^3 (0.0 for an empty mask).
    """
    m = as_mask(mask)
    sp = check_spacing(spacing)
    return float(np.count_nonzero(m)) * float(np.prod(sp))
