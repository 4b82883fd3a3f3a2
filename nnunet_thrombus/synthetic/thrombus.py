"""Where the thrombus sits, how long it is, and the calcified plaques that mimic it.

A clot occupies an interval ``[0, length_mm]`` of a *chain* of consecutive vessels (e.g. M1 -> M2
superior trunk), fills the lumen in its body and tapers at both ends over ``taper_mm`` (radius
``r * sqrt(e / taper)`` at distance ``e`` from the tip), so contrast surrounds its tips as on real CTA.
Lengths are drawn at adult size and multiplied by the head scale (small heads have short arteries).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnunet_thrombus.synthetic.vessels import Vessel, descendants

#: occlusion site distribution of one patient (``none`` = no occlusion); LVO = ICA or M1
SITE_PROBABILITIES = {"none": 0.2, "ICA": 0.16, "M1": 0.32, "M2": 0.2, "ACA": 0.12}
#: clot length range per site at adult size, mm
SITE_LENGTH_MM = {"ICA": (10.0, 40.0), "M1": (5.0, 25.0), "M2": (3.0, 15.0), "ACA": (3.0, 15.0)}
LVO_SITES = ("ICA", "M1")


@dataclass
class ClotPiece:
    """Part of a clot inside one vessel: vessel arclength ``[t0, t1]`` mm; chain coordinate of t=0 ``offset``."""

    vessel: str
    t0: float
    t1: float
    offset: float


@dataclass
class Occlusion:
    """One thrombus. HU values are intrinsic (before blur and noise)."""

    site: str
    side: str
    pieces: list[ClotPiece]
    length_mm: float
    start_mm: float            # chain coordinate of the proximal tip
    taper_mm: tuple[float, float]
    ncct_hu: float
    perviousness_hu: float
    hu_wave: tuple[float, float, float]   # amplitude HU, wavelength mm, phase: internal heterogeneity
    distal_factor: float       # fraction of the CTA enhancement (above blood HU) left downstream
    distal: dict[str, float] = field(default_factory=dict)  # vessel -> arclength beyond which it is distal

    def radius_scale(self, u: np.ndarray) -> np.ndarray:
        """Clot radius / lumen radius at chain coordinates ``u`` (mm): 0 outside, sqrt taper at the tips."""
        e0 = (u - self.start_mm) / self.taper_mm[0]
        e1 = (self.start_mm + self.length_mm - u) / self.taper_mm[1]
        return np.sqrt(np.clip(np.minimum(e0, e1), 0.0, 1.0))

    def tip_distance(self, u: np.ndarray) -> np.ndarray:
        """Distance (mm) along the chain outside the clot interval (0 inside)."""
        return np.maximum(np.maximum(self.start_mm - u, u - self.start_mm - self.length_mm), 0.0)

    def volume_mm3(self, vessels: dict[str, Vessel], step_mm: float = 0.02) -> float:
        """Analytic volume: integral of pi * r_clot(u)^2 along the centreline (mm^3)."""
        total = 0.0
        for pc in self.pieces:
            v = vessels[pc.vessel]
            t = np.arange(pc.t0, pc.t1, step_mm) + step_mm / 2
            r = np.interp(t, v.arclength, v.radius) * self.radius_scale(t + pc.offset)
            total += float(np.sum(np.pi * r * r) * step_mm)
        return total


def _chain(site: str, side: str, rng: np.random.Generator) -> list[str]:
    """Consecutive vessels a clot of ``site`` may span, proximal first."""
    branch = "M2s" if rng.random() < 0.6 else "M2i"
    names = {"ICA": ["ICA", "M1"], "M1": ["M1", branch], "M2": [branch], "ACA": ["A1", "A2"]}[site]
    return [f"{n}_{side}" for n in names]


def draw_occlusion(rng: np.random.Generator, vessels: dict[str, Vessel], site: str, side: str, scale: float,
                   skull_base_z: float, isodense: bool, length_mm: float | None = None) -> Occlusion:
    """Place a clot of a given ``site`` (ICA, M1, M2, ACA) and ``side`` (L, R) in the tree."""
    names = _chain(site, side, rng)
    lengths = [vessels[n].length_mm for n in names]
    offsets = np.r_[0.0, np.cumsum(lengths)[:-1]]
    total = float(sum(lengths))
    first = vessels[names[0]]
    if site == "ICA":  # intracranial part only: above the skull base
        lo = float(first.arclength[np.argmax(first.points[:, 2] > skull_base_z + 2.0)])
        hi = max(lo + 1.0, lengths[0] - 4.0)
    elif site == "ACA":
        lo, hi = 1.5, lengths[0] + 0.3 * lengths[1]
    else:
        lo, hi = 1.5, max(2.0, 0.5 * lengths[0])
    start = float(rng.uniform(lo, hi))
    if length_mm is None:
        a, b = SITE_LENGTH_MM[site]
        length_mm = max(3.0, float(rng.uniform(a, b)) * scale)
    length = float(min(length_mm, total - start - 1.0))
    if length < 3.0:  # keep at least 3 mm: move the start proximally
        start = max(0.5, total - 1.0 - 3.0)
        length = float(min(3.0, total - start - 1.0))
    pieces = []
    for n, off, ln in zip(names, offsets, lengths):
        t0, t1 = max(start, off) - off, min(start + length, off + ln) - off
        if t1 > t0:
            pieces.append(ClotPiece(n, float(t0), float(t1), float(off)))
    r_end = [vessels[pieces[0].vessel].radius_at(pieces[0].t0), vessels[pieces[-1].vessel].radius_at(pieces[-1].t1)]
    taper = tuple(float(min(rng.uniform(0.5, 1.5) * r, length / 3)) for r in r_end)
    ncct = float(rng.uniform(38.0, 44.5)) if isodense else float(rng.uniform(46.0, 70.0))
    occ = Occlusion(site=site, side=side, pieces=pieces, length_mm=length, start_mm=start, taper_mm=taper,
                    ncct_hu=ncct, perviousness_hu=float(rng.uniform(0.0, 30.0)),
                    hu_wave=(float(rng.uniform(0.5, 2.5)), float(rng.uniform(4.0, 10.0)), float(rng.uniform(0, 6.28))),
                    distal_factor=float(rng.uniform(0.1, 0.5)))
    last = pieces[-1]
    if last.t1 < vessels[last.vessel].length_mm - 0.5:
        occ.distal[last.vessel] = last.t1 + taper[1]
    clotted = {pc.vessel for pc in pieces}
    for pc in pieces:  # flow stops in everything downstream of the clot
        for d in descendants(vessels, pc.vessel):
            if d not in clotted:
                occ.distal[d] = 0.0
    return occ


@dataclass
class Calcification:
    """A spherical wall plaque: centre (mm), radius (mm), HU (same on NCCT and CTA)."""

    centre: np.ndarray
    radius_mm: float
    hu: float


def draw_calcifications(rng: np.random.Generator, vessels: dict[str, Vessel], occlusion: Occlusion | None,
                        skull_base_z: float, present: bool) -> list[Calcification]:
    """1-3 plaques on the ICA siphon (80%) or M1 (20%) walls when ``present``, away from the clot."""
    if not present:
        return []
    out = []
    for _ in range(int(rng.integers(1, 4))):
        side = "L" if rng.random() < 0.5 else "R"
        v = vessels[f"ICA_{side}"] if rng.random() < 0.8 else vessels[f"M1_{side}"]
        t_lo = float(v.arclength[np.argmax(v.points[:, 2] > skull_base_z - 4.0)]) if v.segment == "ICA" else 1.0
        for _try in range(10):
            t = float(rng.uniform(t_lo, v.length_mm - 1.0))
            clash = occlusion is not None and any(
                pc.vessel == v.name and pc.t0 - 3.0 < t < pc.t1 + 3.0 for pc in occlusion.pieces)
            if not clash:
                break
        else:
            continue
        c = v.point_at(t)
        tangent = v.point_at(min(t + 0.5, v.length_mm)) - v.point_at(max(t - 0.5, 0.0))
        tangent /= np.linalg.norm(tangent) + 1e-9
        n = rng.normal(size=3)
        n -= n.dot(tangent) * tangent
        n /= np.linalg.norm(n) + 1e-9
        r = v.radius_at(t)
        out.append(Calcification(centre=c + n * (r + 0.1), radius_mm=float(rng.uniform(0.7, 1.2)),
                                 hu=float(rng.uniform(250.0, 700.0))))
    return out
