"""Thrombus location: centroid in patient coordinates, side, occlusion-site class.

Conventions: masks are (z, y, x) arrays as ``SimpleITK.GetArrayFromImage`` gives; ``ImageGeometry``
holds spacing in (z, y, x) mm like the rest of ``measure`` but origin and direction in ITK's patient
order (x, y, z), LPS: +x = patient Left, +y = Posterior, +z = Superior.

Site rule (``classify_site``): the clot centroid is expressed in normalised brain coordinates

    lr = |x - x_mid| / half brain width      0 = mid-sagittal plane, 1 = lateral brain edge
    ap = (y - y_min) / (y_max - y_min)       0 = anterior brain edge, 1 = posterior
    si = (z - z_min) / (z_max - z_min)       0 = inferior brain edge, 1 = vertex

from the brain mask's bounding box and x-centroid (or the whole image when no brain mask is given),
and the thresholds in ``SiteThresholds`` are applied in order: posterior -> "other"; near the
midline -> "ACA"; low and medial -> "ICA"; low and intermediate -> "M1"; lateral -> "M2"; else
"other". The defaults follow the anterior-circulation layout of an adult head (ICA terminus about
15-20 mm, M1 20-45 mm, M2 beyond about 45 mm from the midline, half brain width about 70 mm).
The LVO call itself is a fitted rule: :mod:`nnunet_thrombus.calibration.lvo`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from nnunet_thrombus.measure._arrays import as_mask, check_same_shape, check_spacing
from nnunet_thrombus.vocabulary import CLOT_SITES, OTHER_SITE

SITES = CLOT_SITES + (OTHER_SITE,)


@dataclass(frozen=True)
class ImageGeometry:
    """Voxel grid geometry. spacing: (z, y, x) mm; origin: (x, y, z) mm; direction: 9 floats, ITK
    row-major (columns = patient directions of the x, y, z index axes)."""

    spacing: tuple
    origin: tuple = (0.0, 0.0, 0.0)
    direction: tuple = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def __post_init__(self):
        check_spacing(self.spacing)
        if len(self.origin) != 3 or len(self.direction) != 9:
            raise ValueError(f"origin needs 3 and direction 9 values, got {self.origin!r}, {self.direction!r}")

    @classmethod
    def from_image(cls, image) -> "ImageGeometry":
        """Geometry of a SimpleITK image (spacing reversed into (z, y, x))."""
        return cls(tuple(image.GetSpacing()[::-1]), tuple(image.GetOrigin()), tuple(image.GetDirection()))

    def index_to_patient(self, index_zyx) -> np.ndarray:
        """(n, 3) or (3,) array indices (z, y, x), possibly fractional -> patient (x, y, z) mm."""
        idx = np.asarray(index_zyx, dtype=float)
        xyz = idx[..., ::-1] * np.asarray(self.spacing, dtype=float)[::-1]
        return np.asarray(self.origin) + xyz @ np.asarray(self.direction, dtype=float).reshape(3, 3).T


@dataclass(frozen=True)
class SiteThresholds:
    """Normalised-brain-coordinate thresholds of ``classify_site`` (see module docstring)."""

    posterior_ap: float = 0.72
    aca_max_lr: float = 0.12
    ica_max_lr: float = 0.34
    ica_max_si: float = 0.30
    m1_max_lr: float = 0.62
    m1_max_si: float = 0.45
    m2_max_lr: float = 0.95

    def to_dict(self) -> dict:
        return asdict(self)


def _as_geometry(geometry) -> ImageGeometry:
    if isinstance(geometry, ImageGeometry):
        return geometry
    if hasattr(geometry, "GetSpacing"):
        return ImageGeometry.from_image(geometry)
    raise ValueError(f"geometry must be an ImageGeometry or a SimpleITK image, got {type(geometry).__name__}")


def _index_centroid(mask: np.ndarray) -> np.ndarray:
    total = mask.sum(dtype=np.int64)
    return np.array([(mask.sum(axis=tuple(a for a in range(3) if a != ax), dtype=np.int64)
                      * np.arange(mask.shape[ax])).sum() / total for ax in range(3)])


def centroid_mm(mask, geometry) -> tuple[float, float, float]:
    """Centroid of a (z, y, x) mask in patient (x, y, z) mm (LPS), from origin/spacing/direction.

    Args:
        mask: (z, y, x) array, nonzero = inside.
        geometry: ``ImageGeometry`` or a SimpleITK image on the mask's grid.
    """
    m = as_mask(mask)
    if not m.any():
        raise ValueError("mask is empty: its centroid is undefined")
    return tuple(float(v) for v in _as_geometry(geometry).index_to_patient(_index_centroid(m)))


#: |cosine| between an index axis and patient x above which that axis counts as left-right (about 25 degrees)
MIN_ALIGNMENT = 0.9


def left_right_axis(direction: Sequence[float], transpose_forward: Sequence[int] = (0, 1, 2)) -> int | None:
    """The axis of a preprocessed 3D array (after ``transpose_forward``) that runs left-right in the patient.

    ``direction``: SimpleITK's 3x3 direction, row-major (``image.GetDirection()``). Returns None when no index axis
    is within about 25 degrees of patient x (an oblique or non-axial acquisition)."""
    d = np.asarray(direction, float).reshape(3, 3)
    along_x = np.abs(d[0])  # |x component| of index axes i, j, k
    index_axis = int(np.argmax(along_x))
    if along_x[index_axis] < MIN_ALIGNMENT:
        return None
    array_axis = 2 - index_axis  # SimpleITK arrays are (k, j, i)
    return list(transpose_forward).index(array_axis)


def side(point_mm, midline_x_mm: float = 0.0) -> str:
    """"L" or "R" for a patient-space (x, y, z) point: LPS +x is patient Left of the midline x."""
    return "L" if float(point_mm[0]) > float(midline_x_mm) else "R"


def brain_frame(geometry, brain_mask=None, shape=None) -> dict:
    """Midline x and patient-space bounding box (mm) of the brain mask, or of the whole image grid
    of ``shape`` (z, y, x) when no brain mask is given."""
    geo = _as_geometry(geometry)
    if brain_mask is not None:
        brain = as_mask(brain_mask, "brain_mask")
        if not brain.any():
            raise ValueError("brain_mask is empty")
        lo = [int(np.flatnonzero(brain.any(axis=tuple(a for a in range(3) if a != ax)))[0]) for ax in range(3)]
        hi = [int(np.flatnonzero(brain.any(axis=tuple(a for a in range(3) if a != ax)))[-1]) for ax in range(3)]
        mid = geo.index_to_patient(_index_centroid(brain))[0]
    else:
        if shape is None:
            raise ValueError("shape is needed when no brain mask is given")
        lo, hi = [0, 0, 0], [n - 1 for n in shape]
        mid = geo.index_to_patient((np.array(hi) / 2.0))[0]
    corners = np.array([[c[0], c[1], c[2]] for c in np.ndindex(2, 2, 2)], dtype=float)
    corners = np.where(corners == 0, lo, hi)
    pts = geo.index_to_patient(corners)
    return {"midline_x_mm": float(mid), "min_mm": pts.min(axis=0), "max_mm": pts.max(axis=0)}


def normalised_brain_coordinates(point_mm, frame: dict) -> tuple[float, float, float]:
    """(lr, ap, si) of a patient-space point in a ``brain_frame`` (see module docstring)."""
    p = np.asarray(point_mm, dtype=float)
    lo, hi = frame["min_mm"], frame["max_mm"]
    half_width = max(hi[0] - frame["midline_x_mm"], frame["midline_x_mm"] - lo[0], 1e-6)
    lr = abs(p[0] - frame["midline_x_mm"]) / half_width
    ap = (p[1] - lo[1]) / max(hi[1] - lo[1], 1e-6)
    si = (p[2] - lo[2]) / max(hi[2] - lo[2], 1e-6)
    return float(lr), float(ap), float(si)


def site_from_coordinates(lr: float, ap: float, si: float, thresholds: SiteThresholds = SiteThresholds()) -> str:
    """Apply the ordered site rule to normalised brain coordinates."""
    t = thresholds
    if ap > t.posterior_ap:
        return "other"
    if lr < t.aca_max_lr:
        return "ACA"
    if lr < t.ica_max_lr and si < t.ica_max_si:
        return "ICA"
    if lr < t.m1_max_lr and si < t.m1_max_si:
        return "M1"
    if lr < t.m2_max_lr:
        return "M2"
    return "other"


def classify_site(mask, geometry, brain_mask=None, thresholds: SiteThresholds = SiteThresholds()) -> str:
    """Occlusion-site class of a clot: "ICA", "M1", "M2", "ACA" or "other" ("none" if empty).

    Args:
        mask: (z, y, x) clot mask (one component, or the whole prediction).
        geometry: ``ImageGeometry`` or SimpleITK image of the grid.
        brain_mask: (z, y, x) brain mask defining the normalised frame; None uses the image extent.
        thresholds: ``SiteThresholds``.
    """
    m = as_mask(mask)
    check_same_shape(mask=m, brain_mask=brain_mask)
    if not m.any():
        return "none"
    frame = brain_frame(geometry, brain_mask, m.shape)
    return site_from_coordinates(*normalised_brain_coordinates(centroid_mm(m, geometry), frame), thresholds)
