"""Head anatomy as nested soft shells in continuous millimetre coordinates.

The head is a set of ellipsoids (scalp, outer and inner skull table, brain surface, grey/white
boundary) cut below by a skull-base plate, with gyral folding from a smooth sinusoidal modulation,
lateral/third ventricles and deep grey nuclei. :func:`head_fractions` returns, for any points, the
volume fraction of each tissue inside a voxel of size ``h`` mm (linear partial-volume ramp across the
surface), so any grid (any spacing, any rigid pose) samples the same anatomy.

Tissue codes used in ``SyntheticCase.tissue`` (documented in docs/synthetic_data.md):
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TISSUE_CODES = {
    "air": 0, "scalp": 1, "skull": 2, "csf": 3, "grey_matter": 4, "white_matter": 5,
    "ventricle": 6, "artery": 7, "thrombus": 8, "calcification": 9,
}
__doc__ += "\n".join(f"    {v}: {k}" for k, v in TISSUE_CODES.items())

#: order of the fraction channels returned by :func:`head_fractions`
BASE_TISSUES = ("scalp", "cortical_bone", "diploe", "csf", "grey_matter", "white_matter", "ventricle")


def soft_occupancy(signed_distance_mm: np.ndarray, h_mm: float) -> np.ndarray:
    """Fraction of a voxel of size ``h_mm`` inside a surface at signed distance (negative inside)."""
    return np.clip(0.5 - signed_distance_mm / h_mm, 0.0, 1.0).astype(np.float32)


def ellipsoid_sd(p: np.ndarray, centre, semi_axes) -> np.ndarray:
    """First-order signed distance (mm) of points ``p`` (3, n) to an axis-aligned ellipsoid."""
    q = np.zeros(p.shape[1], np.float32)
    g = np.zeros(p.shape[1], np.float32)
    for k in range(3):
        d = p[k] - np.float32(centre[k])
        a2 = np.float32(semi_axes[k] ** 2)
        q += d * d / a2
        g += (d / a2) ** 2
    return (q - 1.0) / (2.0 * np.sqrt(g) + 1e-6)


@dataclass
class HeadModel:
    """Per-patient head geometry (mm, already scaled by ``scale``)."""

    scale: float
    head_semi: np.ndarray
    scalp_mm: float
    skull_mm: float
    csf_mm: float
    cortex_mm: float
    skull_base_z: float
    base_plate_mm: float
    fold_wavelengths: np.ndarray
    fold_phases: np.ndarray
    ventricles: list = field(default_factory=list)   # (centre, semi_axes)
    deep_grey: list = field(default_factory=list)


def draw_head(rng: np.random.Generator, scale: float) -> HeadModel:
    """Draw a head: adult dimensions (semi-axes about 74 x 94 x 92 mm) times ``scale``."""
    s = float(scale)
    ts = float(np.sqrt(s))  # layer thicknesses shrink less than the head so a small head keeps a skull
    semi = np.array([74.0, 94.0, 92.0]) * rng.uniform(0.95, 1.05, 3) * s
    vent_c = [(sgn * 11.0 * s, 2.0 * s, 16.0 * s) for sgn in (1, -1)]
    vent_a = np.array([5.0, 24.0, 8.0]) * s * rng.uniform(0.8, 1.3)
    ventricles = [(c, vent_a) for c in vent_c] + [((0.0, 4.0 * s, 2.0 * s), np.array([1.6, 9.0, 7.0]) * s)]
    deep = [((sgn * 19.0 * s, 2.0 * s, 6.0 * s), np.array([7.0, 13.0, 8.0]) * s) for sgn in (1, -1)]
    return HeadModel(
        scale=s, head_semi=semi, scalp_mm=5.0 * ts * rng.uniform(0.8, 1.2), skull_mm=7.0 * ts * rng.uniform(0.85, 1.15),
        csf_mm=1.5 * ts, cortex_mm=3.0 * ts, skull_base_z=-30.0 * s, base_plate_mm=12.0 * ts,
        fold_wavelengths=np.array([22.0, 26.0, 24.0]) * s * rng.uniform(0.9, 1.1, 3),
        fold_phases=rng.uniform(0, 2 * np.pi, 6), ventricles=ventricles, deep_grey=deep)


def _folding(p: np.ndarray, head: HeadModel, which: int) -> np.ndarray:
    """Smooth pattern in [-1, 1] used for sulci (which=0) and the grey/white boundary (which=1)."""
    out = np.ones(p.shape[1], np.float32)
    for k in range(3):
        out *= np.sin(np.float32(2 * np.pi / head.fold_wavelengths[k]) * p[k] + np.float32(head.fold_phases[3 * which + k]))
    return out


def head_fractions(p: np.ndarray, head: HeadModel, h_mm: float) -> dict[str, np.ndarray]:
    """Tissue volume fractions at anatomy-frame points ``p`` (3, n) in mm for voxels of size ``h_mm``.

    Returns a dict with the keys of :data:`BASE_TISSUES` plus ``head`` (inside the skin) and
    ``intracranial`` (inside the inner table and above the skull base = brain mask), each (n,) float32
    in [0, 1]; air is ``1 - head``.
    """
    zero = (0.0, 0.0, 0.0)
    z = p[2]
    sd_head = ellipsoid_sd(p, zero, head.head_semi)
    outer = head.head_semi - head.scalp_mm
    inner = outer - head.skull_mm
    brain = inner - head.csf_mm
    o_head = soft_occupancy(sd_head, h_mm)
    above_plate = soft_occupancy(head.skull_base_z - head.base_plate_mm - z, h_mm)
    above_base = soft_occupancy(head.skull_base_z - z, h_mm)
    sd_inner = ellipsoid_sd(p, zero, inner)
    o_intra = soft_occupancy(sd_inner, h_mm) * above_base
    o_outer = np.maximum(soft_occupancy(ellipsoid_sd(p, zero, outer), h_mm) * above_plate, o_intra)
    sulci = np.maximum(_folding(p, head, 0), 0) * np.float32(1.5 * head.csf_mm)
    sd_brain = ellipsoid_sd(p, zero, brain) + sulci
    o_brain = np.minimum(soft_occupancy(sd_brain, h_mm) * soft_occupancy(head.skull_base_z + head.csf_mm - z, h_mm),
                         o_intra)
    sd_wm = ellipsoid_sd(p, zero, brain - head.cortex_mm) + _folding(p, head, 1) * np.float32(0.7 * head.cortex_mm)
    o_wm = np.minimum(soft_occupancy(sd_wm, h_mm), o_brain)
    bone = o_outer - o_intra
    third = head.skull_mm / 3
    dipl = np.clip(soft_occupancy(ellipsoid_sd(p, zero, outer - third), h_mm)
                   - soft_occupancy(ellipsoid_sd(p, zero, inner + third), h_mm), 0, 1) * above_base
    dipl = np.minimum(dipl, bone)
    vent = np.zeros_like(o_wm)
    for c, a in head.ventricles:
        vent = np.maximum(vent, soft_occupancy(ellipsoid_sd(p, c, a), h_mm))
    vent = np.minimum(vent, o_brain)
    deep = np.zeros_like(o_wm)
    for c, a in head.deep_grey:
        deep = np.maximum(deep, soft_occupancy(ellipsoid_sd(p, c, a), h_mm))
    wm = np.clip(o_wm - vent, 0, 1)
    deep = np.minimum(deep, wm)
    wm -= deep
    gm = np.clip(o_brain - o_wm, 0, 1) + deep
    gm = np.clip(gm - np.clip(vent - o_wm, 0, 1), 0, 1)
    return {
        "head": o_head, "intracranial": o_intra,
        "scalp": np.clip(o_head - o_outer, 0, 1), "cortical_bone": bone - dipl, "diploe": dipl,
        "csf": np.clip(o_intra - o_brain, 0, 1), "grey_matter": gm, "white_matter": wm, "ventricle": vent,
    }
