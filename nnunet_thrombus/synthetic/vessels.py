"""Arterial tree: anterior circulation and circle of Willis as smooth 3D centrelines.

Each vessel is a cubic spline through jittered control points (full-size adult positions in mm,
times the head scale), resampled every 0.25 mm of arclength, with a radius profile at real calibre
(ICA 4.5 mm, M1 3 mm, M2 2 mm, A1/A2 2 mm, basilar 3 mm, P1/P2 2 mm, communicating arteries 1.2-1.5 mm
diameter). Distances from voxels to a centreline are computed only inside the vessel's bounding box,
with a k-d tree over the dense centreline samples (error < 0.01 mm at these step sizes).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.interpolate import make_interp_spline
from scipy.spatial import cKDTree

STEP_MM = 0.25

# control points of the left-side vessels (x > 0 is the patient's left), full-size head, mm;
# junction names in braces are shared between vessels
_JUNCTIONS = {
    "T": (14.0, -2.0, -14.0),     # ICA terminus
    "B": (33.0, 0.0, -9.0),       # MCA bifurcation
    "J": (1.6, -16.0, -9.0),      # A1/A2 junction (AComm)
    "P": (10.0, 10.0, -18.0),     # P1/P2 junction (PComm)
}
_LEFT = {
    # name: (segment, parent, control points, radius start, radius end)
    "ICA": ("ICA", None, [(17, 10, -54), (16, 8, -42), (15, 2, -33), (14, -8, -28), (13, -11, -22),
                          (13, -6, -17), "T"], 2.35, 2.15),
    "M1": ("M1", "ICA", ["T", (20, -3, -13), (27, -2, -11), "B"], 1.55, 1.45),
    "M2s": ("M2", "M1", ["B", (37, 0, -4), (40, 4, 4), (41, 12, 12), (40, 22, 18)], 1.05, 0.9),
    "M2i": ("M2", "M1", ["B", (38, 4, -9), (42, 12, -7), (43, 22, -3), (42, 32, 3)], 1.05, 0.9),
    "A1": ("ACA", "ICA", ["T", (10, -8, -12), (5, -13, -10), "J"], 1.05, 1.0),
    "A2": ("ACA", "A1", ["J", (2, -22, -2), (2, -28, 10), (2, -27, 24), (2, -18, 36), (2, -6, 42)], 1.0, 0.85),
    "PComm": ("PComm", "ICA", [(13.5, -5, -16), (12, 2, -17), "P"], 0.65, 0.6),
    "P1": ("PCA", "BA", [(0.0, 14, -20), (5, 12, -19), "P"], 1.0, 1.0),
    "P2": ("PCA", "P1", ["P", (18, 16, -16), (24, 26, -12), (26, 38, -6)], 1.0, 0.9),
}
_MIDLINE = {
    "BA": ("BA", None, [(0, 22, -54), (0, 19, -40), (0, 15, -28), (0.0, 14, -20)], 1.5, 1.45),
    "AComm": ("AComm", "A1", [("J", "L"), (0, -16.5, -9), ("J", "R")], 0.75, 0.75),
}


#: clot chains run ICA -> M1 -> M2 and A1 -> A2. A daughter in CONTINUES leaves its junction in its parent's end
#: direction, and a parent in TURNS_INTO ends half-way between its approach and its daughter's way on, so a
#: chain rarely kinks (the splines met at 80-140 degrees at the carotid T before); every centreline is smoothed
#: toward no bend tighter than MIN_BEND_RADII lumen radii (a tube bent tighter than its radius folds over
#: itself, and an ICA clot's centreline length then had no counterpart in its shape). Measured over 30 paper
#: heads: junction kinks median 5, max 26 degrees; the median vessel's tightest bend is 2 lumen radii, but the
#: first and last millimetre (kept to hold the junction) can still hook (5% of vessels below 0.6 radii).
CONTINUES = ("M1", "M2s", "M2i", "A2")
TURNS_INTO = {"ICA": "M1", "A1": "A2"}
MIN_BEND_RADII = 1.5


@dataclass
class Vessel:
    """One arterial segment: dense centreline ``points`` (n, 3) mm, ``arclength`` (n,) mm, ``radius`` (n,) mm."""

    name: str
    segment: str
    side: str | None
    parent: str | None
    points: np.ndarray
    arclength: np.ndarray
    radius: np.ndarray
    _kd: cKDTree | None = field(default=None, repr=False)

    @property
    def length_mm(self) -> float:
        return float(self.arclength[-1])

    def bbox(self, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned box (lo, hi) around the lumen plus ``margin_mm``."""
        pad = float(self.radius.max()) + margin_mm
        return self.points.min(0) - pad, self.points.max(0) + pad

    def query(self, p: np.ndarray, margin_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For points ``p`` (3, n): indices of those in the bounding box, their distance to the
        centreline (mm) and the index of the nearest centreline sample."""
        lo, hi = self.bbox(margin_mm)
        inside = np.ones(p.shape[1], bool)
        for k in range(3):
            inside &= (p[k] >= lo[k]) & (p[k] <= hi[k])
        idx = np.flatnonzero(inside)
        if self._kd is None:
            self._kd = cKDTree(self.points)
        if idx.size == 0:
            return idx, np.zeros(0, np.float32), np.zeros(0, int)
        d, nearest = self._kd.query(p[:, idx].T.astype(np.float64))
        return idx, d.astype(np.float32), nearest

    def point_at(self, t_mm: float) -> np.ndarray:
        """Centreline position (mm) at arclength ``t_mm``."""
        return np.array([np.interp(t_mm, self.arclength, self.points[:, k]) for k in range(3)])

    def radius_at(self, t_mm: float) -> float:
        return float(np.interp(t_mm, self.arclength, self.radius))


def _resample(fine: np.ndarray, step_mm: float) -> tuple[np.ndarray, np.ndarray]:
    s = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(fine, axis=0), axis=1))]
    t = np.linspace(0, s[-1], max(int(np.ceil(s[-1] / step_mm)) + 1, 2))
    return np.stack([np.interp(t, s, fine[:, k]) for k in range(3)], axis=1), t


def smooth_curve(control: np.ndarray, step_mm: float = STEP_MM, start_tangent=None, end_tangent=None,
                 min_bend_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Cubic interpolating spline through ``control`` (m, 3), resampled every ``step_mm`` of arclength.

    ``start_tangent`` / ``end_tangent``: unit directions the curve must have at its ends (None = free).
    ``min_bend_mm``: then smooth the interior (Gaussian; the first and last 1 mm stay put, the next 1 mm
    move partly, so end points stay at their junctions) until no bend is tighter than this radius (at most 40
    passes).
    """
    chord = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(control, axis=0), axis=1))]
    k = min(3, len(control) - 1)
    if k == 3 and (start_tangent is not None or end_tangent is not None):
        bc = tuple([(1, np.asarray(tg, float))] if tg is not None else [(2, np.zeros(3))]
                   for tg in (start_tangent, end_tangent))
        spline = make_interp_spline(chord, control, k=3, bc_type=bc)
    else:
        spline = make_interp_spline(chord, control, k=k)
    u = np.linspace(0, chord[-1], max(int(chord[-1] / (step_mm / 4)), 8))
    pts, t = _resample(spline(u), step_mm)
    for _ in range(40 if min_bend_mm > 0 else 0):
        if bend_radius_mm(pts).min() >= min_bend_mm:
            break
        n = np.arange(len(pts))
        w = np.clip((np.minimum(n, n[::-1]) * step_mm - 1.0) / 1.0, 0.0, 1.0)[:, None]
        pts, t = _resample(pts + w * (ndimage.gaussian_filter1d(pts, 2.0, axis=0, mode="nearest") - pts), step_mm)
    return pts, t


def bend_radius_mm(pts: np.ndarray, span: int = 4) -> np.ndarray:
    """Radius (mm) of the circle through samples ``span`` apart along a polyline (n, 3) (inf where straight)."""
    if len(pts) < 2 * span + 1:
        return np.full(1, np.inf)
    a, b, c = pts[:-2 * span], pts[span:-span], pts[2 * span:]
    area2 = np.linalg.norm(np.cross(b - a, c - a), axis=1)
    prod = np.linalg.norm(b - a, axis=1) * np.linalg.norm(c - b, axis=1) * np.linalg.norm(c - a, axis=1)
    return np.where(area2 > 1e-12, prod / np.maximum(area2, 1e-300), np.inf) / 2.0


def build_arterial_tree(rng: np.random.Generator, scale: float, jitter_mm: float = 1.5,
                        calibre_factor: float = 1.0) -> dict[str, Vessel]:
    """Draw one patient's arteries: both sides of the table above plus basilar and AComm.

    Positions are scaled by ``scale`` (head size) and jittered by ``jitter_mm`` x scale (Gaussian,
    per control point and per side); radii are real (times 0.9-1.1 per patient) times ``calibre_factor``.
    """
    s = float(scale)
    calibre = rng.uniform(0.9, 1.1) * float(calibre_factor)
    junctions = {}
    for side, sgn in (("L", 1.0), ("R", -1.0)):
        for name, c in _JUNCTIONS.items():
            j = np.array(c) * np.array([sgn, 1.0, 1.0])
            if name != "J":
                j = j + rng.normal(0, jitter_mm, 3)
            junctions[(name, side)] = j * s

    def resolve(pt, side, sgn):
        if isinstance(pt, str):
            return junctions[(pt, side)]
        if isinstance(pt[0], str):
            return junctions[(pt[0], pt[1])]
        return (np.array(pt, float) * np.array([sgn, 1.0, 1.0]) + rng.normal(0, jitter_mm, 3)) * s

    vessels: dict[str, Vessel] = {}
    specs = [("BA", _MIDLINE["BA"], None, 1.0)]
    specs += [(f"{n}_{side}", spec, side, sgn) for side, sgn in (("L", 1.0), ("R", -1.0)) for n, spec in _LEFT.items()]
    specs += [("AComm", _MIDLINE["AComm"], None, 1.0)]
    for full_name, (segment, parent, ctrl, r0, r1), side, sgn in specs:
        control = np.stack([resolve(pt, side or "L", sgn) for pt in ctrl])
        if full_name.startswith("P1"):
            control[0] = vessels["BA"].points[-1]
        base = full_name.rsplit("_", 1)[0]
        if base == "A2":  # each A2 keeps to its own side of the midline (its whole lumen, plus a 0.3 mm gap)
            x_min = r0 * calibre + 0.3
            control[1:, 0] = sgn * np.maximum(sgn * control[1:, 0], x_min)
        start_tg = end_tg = None
        if base in CONTINUES and side is not None:   # leave the junction in the parent's end direction
            par_v = vessels[f"{parent}_{side}"]
            start_tg = par_v.points[-1] - par_v.points[-3]
            start_tg = start_tg / np.linalg.norm(start_tg)
        if base in TURNS_INTO and side is not None:  # end half-way between the approach and the daughter's way
            child = _LEFT[TURNS_INTO[base]][2]
            away = (np.array(child[1], float) - np.array(_JUNCTIONS[child[0]], float)) * np.array([sgn, 1.0, 1.0])
            come = control[-1] - control[-2]
            end_tg = come / np.linalg.norm(come) + away / np.linalg.norm(away)
            end_tg = end_tg / np.linalg.norm(end_tg)
        pts, t = smooth_curve(control, start_tangent=start_tg, end_tangent=end_tg,
                              min_bend_mm=MIN_BEND_RADII * max(r0, r1) * calibre)
        radius = np.interp(t, [0, t[-1]], [r0, r1]) * calibre
        par = None if parent is None else (parent if side is None or parent == "BA" else f"{parent}_{side}")
        if full_name == "AComm":
            par = "A1_L"
        vessels[full_name] = Vessel(full_name, segment, side, par, pts.astype(np.float32), t.astype(np.float32),
                                    radius.astype(np.float32))
    return vessels


def descendants(vessels: dict[str, Vessel], name: str) -> list[str]:
    """Names of all vessels downstream of ``name`` (communicating arteries excluded)."""
    out, frontier = [], [name]
    while frontier:
        cur = frontier.pop()
        for v in vessels.values():
            if v.parent == cur and v.segment not in ("AComm", "PComm"):
                out.append(v.name)
                frontier.append(v.name)
    return out
