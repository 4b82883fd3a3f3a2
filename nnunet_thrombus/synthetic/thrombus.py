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
    chain: list[str] = field(default_factory=list)           # vessels the clot may span, proximal first
    taper_factor: tuple[float, float] = (1.0, 1.0)           # tip taper length / lumen radius at each tip

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
    taper_factor = (float(rng.uniform(0.5, 1.5)), float(rng.uniform(0.5, 1.5)))
    ncct = float(rng.uniform(38.0, 44.5)) if isodense else float(rng.uniform(46.0, 70.0))
    occ = Occlusion(site=site, side=side, pieces=[], length_mm=length, start_mm=start, taper_mm=(1.0, 1.0),
                    ncct_hu=ncct, perviousness_hu=float(rng.uniform(0.0, 30.0)),
                    hu_wave=(float(rng.uniform(0.5, 2.5)), float(rng.uniform(4.0, 10.0)), float(rng.uniform(0, 6.28))),
                    distal_factor=float(rng.uniform(0.1, 0.5)), chain=names, taper_factor=taper_factor)
    return place_occlusion(occ, vessels, length)


def place_occlusion(occ: Occlusion, vessels: dict[str, Vessel], length_mm: float) -> Occlusion:
    """Lay ``occ`` (chain, start, taper factors already drawn) over ``length_mm`` of its chain: pieces per
    vessel, tip tapers (factor x lumen radius, at most a third of the length) and the vessels it makes distal.
    Draws nothing at random, so calling it again with a shorter length shortens the clot without
    changing the rest of the case."""
    names = occ.chain
    lengths = [vessels[n].length_mm for n in names]
    offsets = np.r_[0.0, np.cumsum(lengths)[:-1]]
    start, length = occ.start_mm, float(length_mm)
    pieces = []
    for n, off, ln in zip(names, offsets, lengths):
        t0, t1 = max(start, off) - off, min(start + length, off + ln) - off
        if t1 > t0:
            pieces.append(ClotPiece(n, float(t0), float(t1), float(off)))
    r_end = [vessels[pieces[0].vessel].radius_at(pieces[0].t0), vessels[pieces[-1].vessel].radius_at(pieces[-1].t1)]
    occ.pieces, occ.length_mm = pieces, length
    occ.taper_mm = tuple(float(min(f * r, length / 3)) for f, r in zip(occ.taper_factor, r_end))
    occ.distal = {}
    last = pieces[-1]
    if last.t1 < vessels[last.vessel].length_mm - 0.5:
        occ.distal[last.vessel] = last.t1 + occ.taper_mm[1]
    clotted = {pc.vessel for pc in pieces}
    for pc in pieces:  # flow stops in everything downstream of the clot
        for d in descendants(vessels, pc.vessel):
            if d not in clotted:
                occ.distal[d] = 0.0
    return occ


def clot_centreline(occ: Occlusion, vessels: dict[str, Vessel]) -> tuple[np.ndarray, np.ndarray]:
    """Centreline samples (n, 3) mm inside the clot and the clot radius (mm) at each."""
    pts, rad = [], []
    for pc in occ.pieces:
        v = vessels[pc.vessel]
        keep = (v.arclength >= pc.t0) & (v.arclength <= pc.t1)
        pts.append(v.points[keep])
        rad.append(v.radius[keep] * occ.radius_scale(v.arclength[keep] + pc.offset))
    return np.concatenate(pts), np.concatenate(rad)


#: where wall calcifications and plaques sit (vessel kind -> probability); ICA siphon plaques dominate
CALC_VESSELS = {"ICA": 0.4, "M1": 0.2, "M2": 0.15, "ACA": 0.1, "BA": 0.1, "PCA": 0.05}
#: HU of calcium (intrinsic, before partial volume): thin wall calcifications are fainter than nodular plaques
CALC_HU = {"wall": (250.0, 600.0), "plaque": (300.0, 800.0)}
CALC_CLEARANCE_MM = 2.0   # free gap between a calcification and the clot surface


@dataclass
class Calcification:
    """Calcium in or beside an artery wall, as a union of balls of ``radius_mm`` centred at ``centres`` (k, 3) mm.

    ``kind``: "wall" = a curvilinear plate in the vessel wall (beads along 2-6 mm of the wall at one
    angle), "plaque" = a nodule beside the lumen (one to three overlapping balls). Same HU on NCCT and
    CTA (calcium does not enhance); it never narrows flow downstream.
    """

    kind: str
    vessel: str
    centres: np.ndarray
    radius_mm: float
    hu: float
    extent_mm: float = 0.0    # length along the vessel covered by the bead centres

    @property
    def centre(self) -> np.ndarray:
        return self.centres.mean(axis=0)

    def to_truth(self) -> dict:
        """JSON-ready record: kind, vessel, centre (mm, LPS), radius, extent and HU."""
        return {"kind": self.kind, "vessel": self.vessel, "centre_mm": [round(float(v), 3) for v in self.centre],
                "radius_mm": round(self.radius_mm, 3), "extent_mm": round(self.extent_mm, 3),
                "hu": round(self.hu, 1), "n_balls": int(len(self.centres))}


def _wall_normal(v: Vessel, t: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Unit tangent and a random unit normal of vessel ``v`` at arclength ``t``."""
    tangent = v.point_at(min(t + 0.5, v.length_mm)) - v.point_at(max(t - 0.5, 0.0))
    tangent /= np.linalg.norm(tangent) + 1e-9
    n = rng.normal(size=3)
    n -= n.dot(tangent) * tangent
    return tangent, n / (np.linalg.norm(n) + 1e-9)


def _one_calcification(rng: np.random.Generator, v: Vessel, t: float, kind: str) -> Calcification:
    _, normal = _wall_normal(v, t, rng)
    lo, hi = CALC_HU[kind]
    hu = float(rng.uniform(lo, hi))
    if kind == "plaque":
        radius = float(rng.uniform(0.8, 1.4))
        n_balls = int(rng.integers(1, 4))
        ts = t + np.arange(n_balls) * 0.8 * radius
        ts = ts[ts < v.length_mm]
        centres = np.stack([v.point_at(x) + normal * (v.radius_at(x) + 0.5 * radius) for x in ts])
        extent = float(ts[-1] - ts[0])
    else:
        radius = float(rng.uniform(0.5, 0.8))
        extent = float(rng.uniform(2.0, 6.0))
        ts = np.arange(t, min(t + extent, v.length_mm - 0.2), 0.4)
        _, drift = _wall_normal(v, t, rng)  # the plate winds slowly around the wall
        centres = []
        for k, x in enumerate(ts):
            tangent, _ = _wall_normal(v, float(x), rng)
            w = k / max(len(ts) - 1, 1) * 0.6
            d = normal * (1 - w) + drift * w
            d -= d.dot(tangent) * tangent
            d /= np.linalg.norm(d) + 1e-9
            centres.append(v.point_at(float(x)) + d * (v.radius_at(float(x)) + 0.2))
        centres = np.stack(centres)
        extent = float(ts[-1] - ts[0])
    return Calcification(kind=kind, vessel=v.name, centres=centres.astype(float), radius_mm=radius, hu=hu,
                         extent_mm=extent)


def draw_calcifications(rng: np.random.Generator, vessels: dict[str, Vessel], occlusion: Occlusion | None,
                        skull_base_z: float, present: bool) -> list[Calcification]:
    """1-4 calcifications when ``present``: wall plates (60%) or plaques beside the lumen (40%) on the vessels
    of :data:`CALC_VESSELS`, 2 mm or more above the skull base (inside the brain mask) and at least :data:`CALC_CLEARANCE_MM` from the clot.

    Callers pass a random stream of its own (``phantom`` uses ``default_rng([seed, 1])``) so adding or
    changing calcifications does not change the rest of a case.
    """
    if not present:
        return []
    kinds, probs = list(CALC_VESSELS), np.array(list(CALC_VESSELS.values()))
    clot = clot_centreline(occlusion, vessels) if occlusion is not None else None
    out = []
    n_target = int(rng.integers(1, 5))
    for _try in range(10 * n_target):
        if len(out) == n_target:
            break
        segment = str(rng.choice(kinds, p=probs))
        names = [n for n, v in vessels.items() if v.segment == segment]
        v = vessels[str(rng.choice(sorted(names)))]
        above = np.flatnonzero(v.points[:, 2] > skull_base_z + 2.0)  # intracranial: inside the brain mask
        if above.size == 0:
            continue
        t_lo = float(v.arclength[above[0]])
        if t_lo > v.length_mm - 1.5:
            continue
        t = float(rng.uniform(max(t_lo, 0.5), v.length_mm - 1.0))
        calc = _one_calcification(rng, v, t, "wall" if rng.random() < 0.6 else "plaque")
        if clot is not None:
            pts, rad = clot
            d = np.linalg.norm(calc.centres[:, None, :] - pts[None, :, :], axis=2) - rad[None, :]
            if d.min() < calc.radius_mm + CALC_CLEARANCE_MM:
                continue
        out.append(calc)
    return out
