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


def smooth_curve(control: np.ndarray, step_mm: float = STEP_MM) -> tuple[np.ndarray, np.ndarray]:
    """Cubic interpolating spline through ``control`` (m, 3), resampled every ``step_mm`` of arclength."""
    chord = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(control, axis=0), axis=1))]
    spline = make_interp_spline(chord, control, k=min(3, len(control) - 1))
    u = np.linspace(0, chord[-1], max(int(chord[-1] / (step_mm / 4)), 8))
    fine = spline(u)
    s = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(fine, axis=0), axis=1))]
    t = np.linspace(0, s[-1], max(int(np.ceil(s[-1] / step_mm)) + 1, 2))
    pts = np.stack([np.interp(t, s, fine[:, k]) for k in range(3)], axis=1)
    return pts, t


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
        pts, t = smooth_curve(control)
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
