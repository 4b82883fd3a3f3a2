"""Binary-mask primitives every layer shares: connectivity, connected components and Dice.

Masks are (z, y, x) arrays as ``SimpleITK.GetArrayFromImage`` gives, nonzero = foreground. numpy/scipy only.

Connectivity, one convention for the package: a clot's voxels that touch by a face, an edge or a corner belong to
one component (26-connectivity, :data:`COMPONENT_STRUCTURE`); erosions and surfaces use face neighbours
(6-connectivity, :data:`FACE_STRUCTURE`).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

#: 26-connectivity (3x3x3 of ones): components of a mask
COMPONENT_STRUCTURE = ndimage.generate_binary_structure(3, 3)
#: 6-connectivity (face neighbours): one-voxel erosion, surfaces
FACE_STRUCTURE = ndimage.generate_binary_structure(3, 1)


def label_components(mask) -> tuple[np.ndarray, int]:
    """26-connected components of a (z, y, x) mask (nonzero = foreground): (labels int32, count)."""
    arr = np.asarray(mask)
    if arr.ndim != 3:
        raise ValueError(f"mask must be a 3D (z, y, x) array, got shape {arr.shape}")
    labels, n = ndimage.label(arr != 0, structure=COMPONENT_STRUCTURE)
    return labels, int(n)


def dice(pred, ref) -> float:
    """Dice 2|A n B| / (|A| + |B|) of two masks of one shape (nonzero = foreground); both empty = 1.0, one empty =
    0.0."""
    a, b = np.asarray(pred) != 0, np.asarray(ref) != 0
    if a.shape != b.shape:
        raise ValueError(f"pred and ref must have one shape, got {a.shape} and {b.shape}")
    na, nb = int(np.count_nonzero(a)), int(np.count_nonzero(b))
    if na + nb == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(a & b)) / (na + nb)
