"""Keep or drop each predicted thrombus component by evidence, not by size, and say why.

Every 26-connected component of the network's mask gets the features the report measures
(:func:`nnunet_thrombus.measure.components.measure_components`: volume mm^3, NCCT mean HU, CTA mean HU, site,
side) plus three of its own (:func:`component_evidence`):

- ``mean_probability`` / ``max_probability``: the thrombus probability inside the component (None without a
  probability map);
- ``on_artery``: a contrast-filled vessel (CTA >= ``vessel_hu``) within ``artery_radius_mm`` of the component
  (an occluding clot sits in an artery whose upstream lumen is bright; a blob in the parenchyma does not);
- ``downstream_ratio``: contrast in the vessels around the component relative to the mirrored contralateral
  region (sum of CTA HU above ``vessel_hu`` over brain voxels in a 30 mm ball around the component, its own 3 mm
  neighbourhood left out). An occlusion starves its distal branches (ratio below 1); a calcified plaque beside a
  patent artery does not (ratio near 1). It only overrides the density tests (a dense clot with a deficit is kept
  and flagged), never drops a component by itself: on the synthetic phantom, which dims only the branches beyond
  the clot, the deficit it sees is mild.

:class:`ComponentRule` applies, in order, to each component (the first test that fails drops it, with that reason):

1. volume below ``min_volume_mm3``;
2. mean probability below ``min_mean_probability``;
3. mean NCCT at or above ``calcification_hu`` (fresh thrombus is about 45-80 HU, calcium 130 HU and more; partial
   volume brings small plaques down to about 90-110 HU) *and* no contrast deficit downstream
   (``downstream_ratio`` >= ``deficit_ratio``, or unmeasured): "calcification, not thrombus";
4. mean NCCT below ``min_ncct_hu`` (off, 0, unless a fit on validation chooses it): "hypodense on NCCT, not
   thrombus" (fresh thrombus reads at least as dense as blood, about 40 HU; brain tissue 25-40 HU, CSF 0-15 HU);
5. mean CTA minus mean NCCT below ``min_enhancement_hu`` (None, off, unless a fit on validation chooses it): "darker
   on CTA than on NCCT". Iodine only adds attenuation, so a clot in a registered pair reads at least as dense on the
   CTA as on the NCCT (its perviousness, 0 HU or more, plus the bright lumen that partial volume mixes into its
   edge). A component that reads clearly darker on the CTA is a misregistered edge or a beam-hardening artefact at
   the skull base, not thrombus. An impervious clot without partial volume reads about 0 HU, which is why the
   candidates stop at 0 HU;
6. mean CTA at or above ``max_cta_hu`` and no contrast deficit downstream: the component is contrast-filled (lumen,
   or calcium, bright on CTA too), not the filling defect an occluding clot makes (clots read about 50-110 HU on
   CTA): "contrast-filled on CTA, not a filling defect";
7. ``require_artery`` and no contrast-filled vessel next to it: "off the arteries".

Every other component is kept. Components are never ranked by size: when two or more are kept the case is
flagged (``multiple_candidates``) and the report lists them all. ``fit_component_rule`` chooses the thresholds on
validation cases only (components that overlap the reference clot must never be dropped; then as few wrong
presence calls as possible; then the least aggressive rule), and the result is stored as ``postprocessing.json``
with the model (:mod:`nnunet_thrombus.calibration.postprocessing`).

Arrays are (z, y, x) on one grid (the CTA grid); ``spacing`` (z, y, x) mm; HU throughout.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from nnunet_thrombus.calibration.artifact import FittedArtifact
from nnunet_thrombus.calibration.lvo import MAX_FITTED_MIN_VOLUME_MM3
from nnunet_thrombus.masks import label_components
from nnunet_thrombus.measure.components import measure_components
from nnunet_thrombus.measure.location import left_right_axis

#: CTA HU from which a voxel counts as contrast-filled lumen (blood 40-45 HU unenhanced, 250-500 HU enhanced)
VESSEL_HU = 150.0
#: the evidence fields each kept/dropped component carries in the report
EVIDENCE_KEYS = ("mean_probability", "max_probability", "on_artery", "vessel_distance_mm", "downstream_ratio")


def _ball(radius_mm: float, spacing) -> np.ndarray:
    r = [max(0, int(np.floor(radius_mm / float(s)))) for s in spacing]
    grids = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    return sum((g * float(s)) ** 2 for g, s in zip(grids, spacing)) <= radius_mm ** 2 + 1e-9


def vessel_distance_mm(component: np.ndarray, cta: np.ndarray, spacing, vessel_hu: float = VESSEL_HU,
                       search_mm: float = 6.0) -> float | None:
    """Distance (mm) from the component to the nearest voxel with CTA >= ``vessel_hu`` outside it, searched up to
    ``search_mm``; None when there is none that close. component: bool (z, y, x); cta: HU, same shape."""
    comp = np.asarray(component, bool)
    sp = np.asarray(spacing, float)
    pad = np.ceil(search_mm / sp).astype(int) + 1
    idx = np.argwhere(comp)
    lo = np.maximum(idx.min(0) - pad, 0)
    hi = np.minimum(idx.max(0) + pad + 1, comp.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    lumen = (np.asarray(cta)[box] >= vessel_hu) & ~comp[box]
    if not lumen.any():
        return None
    dist = ndimage.distance_transform_edt(~comp[box], sampling=sp)
    d = float(dist[lumen].min())
    return d if d <= search_mm else None


def brain_midline_x(brain: np.ndarray | None, shape) -> float | None:
    """Mean x index (last axis) of the brain mask, or the image centre without one; None for an empty mask."""
    if brain is None:
        return (shape[2] - 1) / 2.0
    counts = np.asarray(brain, bool).sum(axis=(0, 1))
    total = counts.sum()
    return None if total == 0 else float((counts * np.arange(counts.size)).sum() / total)


def downstream_ratio(component: np.ndarray, cta: np.ndarray, brain: np.ndarray | None, spacing, direction,
                     radius_mm: float = 30.0, exclude_mm: float = 3.0, vessel_hu: float = VESSEL_HU,
                     midline_x: float | None = None) -> float | None:
    """Vessel contrast near the component over that of the mirrored contralateral region (see module docstring).

    Sum of (CTA - ``vessel_hu``) over voxels above ``vessel_hu`` inside the brain, in a ball of ``radius_mm`` around
    the component's centroid, less the component grown by ``exclude_mm``; the same sum in the region mirrored about
    the brain's mid-sagittal plane (x index ``midline_x``; default: the brain mask's mean x). Columns whose mirror
    falls outside the image count on neither side. None when the grid is not axial-aligned (x index not
    left-right) or the contralateral side has no contrast at all. Works inside the ball's bounding box.
    """
    if left_right_axis(direction) != 2:  # the x index axis must run left-right
        return None
    comp = np.asarray(component, bool)
    sp = np.asarray(spacing, float)
    mid = brain_midline_x(brain, comp.shape) if midline_x is None else float(midline_x)
    if mid is None:
        return None
    centre = np.argwhere(comp).mean(0)
    r = np.ceil(radius_mm / sp).astype(int)
    lo = np.maximum(np.floor(centre).astype(int) - r, 0)
    hi = np.minimum(np.floor(centre).astype(int) + r + 1, comp.shape)
    x = np.arange(lo[2], hi[2])
    x_mirror = np.rint(2.0 * mid - x).astype(int)
    ok = (x_mirror >= 0) & (x_mirror < comp.shape[2])
    if not ok.any():
        return None
    x, x_mirror = x[ok], x_mirror[ok]
    zs, ys = slice(lo[0], hi[0]), slice(lo[1], hi[1])
    zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], 0:1]
    ball = ((zz - centre[0]) * sp[0]) ** 2 + ((yy - centre[1]) * sp[1]) ** 2 + \
        ((x[None, None, :] - centre[2]) * sp[2]) ** 2 <= radius_mm ** 2
    near = ndimage.binary_dilation(comp[zs, ys][:, :, x], structure=_ball(exclude_mm, sp))
    region = ball & ~near

    def contrast(cols):
        sub = np.clip(np.asarray(cta, np.float32)[zs, ys][:, :, cols] - vessel_hu, 0.0, None)
        if brain is not None:
            sub = sub * np.asarray(brain, bool)[zs, ys][:, :, cols]
        return float((sub * region).sum())

    other = contrast(x_mirror)
    return None if other <= 0.0 else contrast(x) / other


def component_evidence(labels: np.ndarray, n: int, probability=None, cta=None, brain=None, spacing=(1, 1, 1),
                       direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), vessel_hu: float = VESSEL_HU,
                       artery_radius_mm: float = 2.0) -> list[dict]:
    """Evidence of components 1..n of ``labels`` (int, z, y, x): one dict per label with :data:`EVIDENCE_KEYS`
    (None where the needed image is missing)."""
    out = []
    mid = brain_midline_x(brain, labels.shape) if cta is not None else None
    for lab in range(1, n + 1):
        comp = labels == lab
        row = dict.fromkeys(EVIDENCE_KEYS)
        if probability is not None:
            p = np.asarray(probability)[comp]
            row["mean_probability"], row["max_probability"] = float(p.mean()), float(p.max())
        if cta is not None:
            d = vessel_distance_mm(comp, cta, spacing, vessel_hu)
            row["vessel_distance_mm"] = None if d is None else round(d, 3)
            row["on_artery"] = d is not None and d <= artery_radius_mm
            ratio = downstream_ratio(comp, cta, brain, spacing, direction, vessel_hu=vessel_hu, midline_x=mid)
            row["downstream_ratio"] = None if ratio is None else round(ratio, 4)
        out.append(row)
    return out


@dataclass(frozen=True)
class ComponentRule(FittedArtifact):
    """Thresholds of the keep/drop rule (module docstring). Volumes mm^3, densities HU, probabilities in [0, 1].
    Stored inside ``postprocessing.json`` (:class:`~nnunet_thrombus.calibration.postprocessing.Postprocessing`)."""

    min_volume_mm3: float = 0.0
    min_mean_probability: float = 0.0
    calcification_hu: float = 90.0
    min_ncct_hu: float = 0.0
    deficit_ratio: float = 0.8
    max_cta_hu: float = 150.0
    require_artery: bool = True
    artery_radius_mm: float = 2.0
    min_enhancement_hu: float | None = None

    def __post_init__(self):
        for name in ("min_volume_mm3", "calcification_hu", "min_ncct_hu", "deficit_ratio", "max_cta_hu",
                     "artery_radius_mm"):
            v = getattr(self, name)
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")
        if self.min_enhancement_hu is not None and not np.isfinite(self.min_enhancement_hu):
            raise ValueError(f"min_enhancement_hu must be a finite number or None, got {self.min_enhancement_hu}")
        if not 0.0 <= self.min_mean_probability <= 1.0:
            raise ValueError(f"min_mean_probability must be in [0, 1], got {self.min_mean_probability}")

    def decide(self, comp: dict) -> tuple[bool, str, list[str]]:
        """(keep, reason, flags) for one component dict (measurements + evidence)."""
        vol = float(comp["volume_mm3"])
        if vol < self.min_volume_mm3:
            return False, f"smaller than {self.min_volume_mm3:g} mm3 ({vol:.1f} mm3)", []
        p = comp.get("mean_probability")
        if p is not None and p < self.min_mean_probability:
            return False, f"mean probability {p:.2f} < {self.min_mean_probability:g}", []
        hu, ratio = comp.get("ncct_mean_hu"), comp.get("downstream_ratio")
        deficit = ratio is not None and ratio < self.deficit_ratio
        ratio_txt = "not measured" if ratio is None else f"{ratio:.2f}"
        flags = []
        if hu is not None and hu >= self.calcification_hu:
            if not deficit:
                return False, (f"calcification, not thrombus: NCCT mean {hu:.0f} HU >= {self.calcification_hu:g} HU "
                               f"and no contrast deficit downstream (ratio {ratio_txt})"), []
            flags.append("dense")
        elif hu is not None and hu < self.min_ncct_hu:
            return False, (f"hypodense on NCCT, not thrombus: NCCT mean {hu:.0f} HU < {self.min_ncct_hu:g} HU"), []
        cta_hu = comp.get("cta_mean_hu")
        if self.min_enhancement_hu is not None and cta_hu is not None and hu is not None \
                and cta_hu - hu < self.min_enhancement_hu:
            return False, (f"darker on CTA than on NCCT, not thrombus: CTA mean {cta_hu:.0f} HU - NCCT mean {hu:.0f} "
                           f"HU = {cta_hu - hu:.0f} HU < {self.min_enhancement_hu:g} HU (contrast only adds "
                           f"attenuation: misregistration or a bone-edge artefact)"), []
        if cta_hu is not None and cta_hu >= self.max_cta_hu and not deficit:
            return False, (f"contrast-filled on CTA, not a filling defect: CTA mean {cta_hu:.0f} HU >= "
                           f"{self.max_cta_hu:g} HU and no contrast deficit downstream (ratio {ratio_txt})"), []
        on_artery = comp.get("on_artery")
        if self.require_artery and on_artery is False:
            return False, (f"off the arteries: no contrast-filled vessel (CTA >= {VESSEL_HU:g} HU) within "
                           f"{self.artery_radius_mm:g} mm"), []
        why = [f"{vol:.1f} mm3"]
        if p is not None:
            why.append(f"mean probability {p:.2f}")
        if hu is not None:
            why.append(f"NCCT {hu:.0f} HU")
        why.append("on an artery" if on_artery else "artery contact not measured" if on_artery is None
                   else "off the arteries (not required)")
        why.append(f"downstream contrast ratio {ratio_txt}")
        if flags:
            why.append("dense as calcium but contrast reduced downstream: calcified thrombus or plaque, review")
        return True, "thrombus: " + ", ".join(why), flags


def select_components(mask, spacing, *, rule: ComponentRule = ComponentRule(), probability=None, ncct=None,
                      cta=None, brain=None, origin=(0.0, 0.0, 0.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1),
                      reference=None) -> dict:
    """Measure, judge and filter every component of ``mask`` (z, y, x).

    ``reference`` (optional, z, y, x): the true clot mask; each component then also carries ``overlaps_reference``
    (shares a voxel with it), for fitting on validation cases and for evaluation.

    Returns {"mask": uint8 mask of the kept components, "kept": [component dicts], "dropped": [component dicts],
    "flags": case flags ("multiple_candidates", "dense_candidate")}. Each component dict holds the
    ``measure_components`` fields, :data:`EVIDENCE_KEYS`, ``kept`` (bool) and ``reason``; kept ones are re-indexed
    1.. by volume, dropped ones keep ``index`` None and ``candidate`` (their rank among all components).
    """

    m = np.asarray(mask) > 0
    spacing = tuple(float(s) for s in spacing)
    labels, n = label_components(m)
    if n == 0:
        return {"mask": np.zeros(m.shape, np.uint8), "kept": [], "dropped": [], "flags": []}
    evidence = component_evidence(labels, n, probability, cta, brain, spacing, direction,
                                  artery_radius_mm=rule.artery_radius_mm)
    kept, dropped, keep_labels, flags = [], [], [], set()
    geo = dict(spacing=spacing, origin=origin, direction=direction)
    for lab in range(1, n + 1):
        comp = labels == lab
        row = measure_components(comp, ncct, cta, brain, **geo)[0]
        row.update(evidence[lab - 1])
        keep, reason, comp_flags = rule.decide(row)
        row.update(kept=keep, reason=reason)
        if reference is not None:
            row["overlaps_reference"] = bool((np.asarray(reference)[comp] > 0).any())
        if comp_flags:
            row["flags"] = comp_flags
            flags.add("dense_candidate")
        (kept if keep else dropped).append(row)
        if keep:
            keep_labels.append(lab)
    order = sorted(range(n), key=lambda i: -float((kept + dropped)[i]["volume_mm3"]))
    for rank, i in enumerate(order, start=1):
        (kept + dropped)[i]["candidate"] = rank
    kept.sort(key=lambda r: -r["volume_mm3"])
    dropped.sort(key=lambda r: -r["volume_mm3"])
    for i, row in enumerate(kept, start=1):
        row["index"] = i
    for row in dropped:
        row["index"] = None
    if len(kept) >= 2:
        flags.add("multiple_candidates")
    return {"mask": np.isin(labels, keep_labels).astype(np.uint8), "kept": kept, "dropped": dropped,
            "flags": sorted(flags)}


#: NCCT floors a fit may choose (0: off); below blood (about 40 HU) but above CSF, so that partial volume with the
#: CSF sleeve around a small distal artery does not push a true clot's mean under them
HYPODENSE_FLOORS_HU = (0.0, 30.0)
#: CTA-minus-NCCT floors a fit may choose (None: off); never above 0 HU, the enhancement of an impervious clot
ENHANCEMENT_FLOORS_HU = (None, -10.0, 0.0)


def candidate_grid(cases) -> list[ComponentRule]:
    """Rules tried by :func:`fit_component_rule`, most preferred first (least aggressive within each choice)."""
    vols = sorted({float(c["volume_mm3"]) for comps in cases for c in comps})
    mids = [0.5 * (a + b) for a, b in zip(vols[:-1], vols[1:])]
    min_vols = [0.0] + [v for v in mids if v <= MAX_FITTED_MIN_VOLUME_MM3]
    has_p = any(c.get("mean_probability") is not None for comps in cases for c in comps)
    probs = (0.0, 0.6, 0.7, 0.8) if has_p else (0.0,)
    out = []
    for calc, cta, artery, v, p, floor, enh in itertools.product(
            (90.0, 100.0, 110.0), (150.0, 200.0, 1e4), (True, False), min_vols, probs, HYPODENSE_FLOORS_HU,
            ENHANCEMENT_FLOORS_HU):
        out.append(ComponentRule(min_volume_mm3=v, min_mean_probability=p, calcification_hu=calc, max_cta_hu=cta,
                                 require_artery=artery, min_ncct_hu=floor, min_enhancement_hu=enh))
    return out


def score_rule(rule: ComponentRule, cases) -> tuple[int, int, int]:
    """(true components dropped, false components kept, cases whose presence call is wrong) on validation
    ``cases``: lists of component dicts carrying ``overlaps_reference`` (bool)."""
    true_dropped = false_kept = wrong = 0
    for comps in cases:
        decisions = [rule.decide(c)[0] for c in comps]
        true_dropped += sum(c["overlaps_reference"] and not k for c, k in zip(comps, decisions))
        false_kept += sum(not c["overlaps_reference"] and k for c, k in zip(comps, decisions))
        truth = any(c["overlaps_reference"] for c in comps)
        wrong += truth != any(decisions)
    return true_dropped, false_kept, wrong


def fit_component_rule(cases, base: ComponentRule = ComponentRule()) -> tuple[ComponentRule, dict]:
    """Choose the rule on validation ``cases`` (iterable of lists of component dicts with ``overlaps_reference``).

    Order of preference: fewest components that overlap the reference dropped, then fewest wrong presence calls
    (a clot-free case with a kept component, or a clot case with none kept); among equals the earliest of
    :func:`candidate_grid` (physics defaults first: NCCT 90 HU, CTA 150 HU, artery required, then the smallest
    volume, probability and density thresholds), whatever its count of false components.

    Why not "then fewest false components": a false component in a case that has a clot does not change its call
    (the case is flagged ``multiple_candidates`` and the report lists both), and tightening a threshold until it
    also goes fits the noise of a few dozen validation cases. Measured (SYNTHETIC, five-fold cpu model, 40
    validation patients whose smallest true component was 13.8 mm^3): minimising false components chose a mean
    probability of 0.7, which dropped five true clots of 1.6-10.5 mm^3 on the 60-patient evaluation cohort
    (docs/results/trust_eval_cpu.md). Returns (rule, {"score", "default_score", "n_cases",
    "n_components", "n_true_components"}).
    """
    cases = [list(c) for c in cases]
    if not cases:
        raise ValueError("fit_component_rule needs at least one validation case")
    grid = [replace(r, artery_radius_mm=base.artery_radius_mm, deficit_ratio=base.deficit_ratio)
            for r in candidate_grid(cases)]
    scores = [score_rule(r, cases) for r in grid]
    best = min(range(len(grid)), key=lambda i: (scores[i][0], scores[i][2], i))
    info = {"score": dict(zip(("true_dropped", "false_kept", "wrong_presence"), scores[best])),
            "default_score": dict(zip(("true_dropped", "false_kept", "wrong_presence"), score_rule(base, cases))),
            "n_cases": len(cases), "n_components": sum(len(c) for c in cases),
            "n_true_components": sum(x["overlaps_reference"] for c in cases for x in c)}
    return grid[best], info
