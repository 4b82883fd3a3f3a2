"""Case-level occlusion call: "no occlusion", "LVO" or "non-LVO occlusion".

Rule (``LVOThresholds``, documented in docs/metrics.md):

1. components with volume below ``min_volume_mm3`` are ignored (specks of false positives);
   none left -> "no occlusion";
2. the remaining component with the largest volume decides: "LVO" when its site is in ``lvo_sites``
   (ICA, M1) or, if ``min_lvo_diameter_mm`` is set, when its mean diameter reaches that calibre
   (large vessels are wide); otherwise "non-LVO occlusion".

Calibre check of the ICA site (``refined_site``): the site rule works on the brain box only, and a clot at the
origin of the A1 sits in its ICA zone beside the carotid T. With ``min_ica_diameter_mm`` set, a component the
site rule calls "ICA" whose mean diameter is below it has the calibre of an A1 or M1, not of the ICA (lumen
diameters about 2, 3 and 4.5 mm): it becomes "ACA" when its centroid lies medial of ``carotid_t_lr`` (the A1
runs medially from the carotid T) and "M1" otherwise. ``fit_ica_calibre`` sets the threshold from the training
set's own ICA reference clots, so it follows the cohort's calibre.

Thresholds are fitted on validation folds only (``fit_lvo_thresholds``) and stored as ``lvo_thresholds.json``
next to the model (fields at the top level, :mod:`~nnunet_thrombus.calibration.artifact`). Components are the dicts of ``measure.components.measure_components`` (keys used:
``volume_mm3``, ``site``, ``mean_diameter_mm``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from nnunet_thrombus.calibration.artifact import FittedArtifact
from nnunet_thrombus.vocabulary import CALLS, LVO_SITES

#: normalised distance of the carotid T from the midline (14 of about 70 mm half brain width; the middle of the site
#: rule's ICA zone, 0.12-0.34, is 0.23): the A1 runs medially from it, the M1 laterally
CAROTID_T_LR = 0.23
#: fitted minimum volumes (this rule's and the component rule's) are capped here, so that a fit on few validation
#: cases cannot learn to delete small distal clots (M2/ACA clots are often under 30 mm^3)
MAX_FITTED_MIN_VOLUME_MM3 = 10.0


@dataclass(frozen=True)
class LVOThresholds(FittedArtifact):
    """Thresholds of the occlusion rule; volumes in mm^3, diameters in mm."""

    FILE = "lvo_thresholds.json"

    min_volume_mm3: float = 5.0
    lvo_sites: tuple = LVO_SITES
    min_lvo_diameter_mm: float | None = None
    min_ica_diameter_mm: float | None = None
    carotid_t_lr: float = CAROTID_T_LR

    def __post_init__(self):
        if not np.isfinite(self.min_volume_mm3) or self.min_volume_mm3 < 0:
            raise ValueError(f"min_volume_mm3 must be >= 0, got {self.min_volume_mm3}")
        if self.min_lvo_diameter_mm is not None and self.min_lvo_diameter_mm <= 0:
            raise ValueError(f"min_lvo_diameter_mm must be positive or None, got {self.min_lvo_diameter_mm}")
        if self.min_ica_diameter_mm is not None and not (np.isfinite(self.min_ica_diameter_mm)
                                                         and self.min_ica_diameter_mm > 0):
            raise ValueError(f"min_ica_diameter_mm must be positive or None, got {self.min_ica_diameter_mm}")
        if not 0.0 < self.carotid_t_lr < 1.0:
            raise ValueError(f"carotid_t_lr must lie in (0, 1), got {self.carotid_t_lr}")
        object.__setattr__(self, "lvo_sites", tuple(self.lvo_sites))

    def describe(self) -> str:
        rule = f"largest component >= {self.min_volume_mm3:g} mm3 is an occlusion; LVO if site in {list(self.lvo_sites)}"
        if self.min_lvo_diameter_mm is not None:
            rule += f" or mean diameter >= {self.min_lvo_diameter_mm:g} mm"
        if self.min_ica_diameter_mm is not None:
            rule += f"; an ICA-zone clot under {self.min_ica_diameter_mm:g} mm is A1 (ACA) or M1"
        return rule


def refined_site(component: dict, rule: LVOThresholds) -> tuple[str, str | None]:
    """The component's site after the ICA calibre check (module docstring) and a note saying why it changed
    (None when it did not). Keys used: ``site``, ``mean_diameter_mm``, ``site_coordinates`` ([lr, ap, si])."""
    site, diameter = component.get("site"), component.get("mean_diameter_mm")
    if site != "ICA" or rule.min_ica_diameter_mm is None or diameter is None or diameter >= rule.min_ica_diameter_mm:
        return site, None
    coords = component.get("site_coordinates")
    if not coords:
        return site, None
    lr = float(coords[0])
    new = "ACA" if lr < rule.carotid_t_lr else "M1"
    where = "medial" if new == "ACA" else "lateral"
    return new, (f"ICA zone, but mean diameter {float(diameter):.2f} mm < {rule.min_ica_diameter_mm:g} mm "
                 f"(ICA calibre) and {where} of the carotid T (lr {lr:.2f} vs {rule.carotid_t_lr:g}): "
                 f"{'A1' if new == 'ACA' else 'M1'}")


def small_call_volume_mm3(rule: LVOThresholds) -> float:
    """Volume (mm^3) under which the component that decides a call makes it a ``small_call``: twice the rule's
    minimum volume, and at least ``MAX_FITTED_MIN_VOLUME_MM3`` (a fitted minimum of 0 still leaves a margin)."""
    return max(2.0 * float(rule.min_volume_mm3), MAX_FITTED_MIN_VOLUME_MM3)


def deciding_component(components, rule: LVOThresholds) -> dict | None:
    """The component a call rests on: the largest of those with volume >= ``rule.min_volume_mm3`` (None: none)."""
    kept = [c for c in components if float(c["volume_mm3"]) >= rule.min_volume_mm3]
    return max(kept, key=lambda c: float(c["volume_mm3"])) if kept else None


def call_flags(components, rule: LVOThresholds = LVOThresholds()) -> list[str]:
    """Case flags of the call :func:`lvo_call` makes from ``components`` (the review rule may ask for review on
    them, ``calibration.review.CALL_FLAGS``): ``site_by_calibre`` when the deciding component's site was changed
    by the ICA calibre check (:func:`refined_site`), ``small_call`` when an occlusion is called from a component
    under :func:`small_call_volume_mm3`. No call, no flags."""
    big = deciding_component(components, rule)
    if big is None:
        return []
    flags = []
    if refined_site(big, rule)[1] is not None:
        flags.append("site_by_calibre")
    if float(big["volume_mm3"]) < small_call_volume_mm3(rule):
        flags.append("small_call")
    return flags


def review_flags(selection: dict, rule: LVOThresholds) -> list[str]:
    """Every case flag of a post-processed case for the review rule: the component selection's (``selection``:
    ``Postprocessing.select``'s result) and those of ``rule``'s call on its kept components (:func:`call_flags`).
    ``fit-lvo`` fits the review rule on these and ``predict`` applies it to them."""
    return list(selection["flags"]) + call_flags(selection["kept"], rule)


def refine_sites(components, rule: LVOThresholds) -> list[dict]:
    """Copies of ``components`` with ``site`` after ``refined_site``; a changed one keeps the site rule's answer in
    ``site_zone`` and the reason in ``site_note``."""
    out = []
    for c in components:
        new, note = refined_site(c, rule)
        out.append({**c, "site": new, "site_zone": c.get("site"), "site_note": note} if note else c)
    return out


#: median ICA reference clot diameter x this = the ICA calibre floor. The A1 lumen is about 0.44 and the M1 about
#: 0.67 of the ICA's (2, 3, 4.5 mm); the thinnest of 40 generator ICA truth masks (demo preset) was 0.89 of their median
ICA_CALIBRE_FRACTION = 0.7
#: fewest ICA reference clots ``fit_ica_calibre`` accepts
MIN_ICA_REFERENCES = 3


def fit_ica_calibre(ica_reference_diameters_mm, fraction: float = ICA_CALIBRE_FRACTION) -> float | None:
    """ICA calibre floor (mm) from the mean diameters of the training set's ICA reference clots: ``fraction`` x
    their median; None with fewer than ``MIN_ICA_REFERENCES``. These are reference masks, not predictions."""
    d = np.asarray([float(v) for v in ica_reference_diameters_mm if v is not None and np.isfinite(v) and v > 0])
    if d.size < MIN_ICA_REFERENCES:
        return None
    return round(float(fraction * np.median(d)), 2)


def lvo_call(components, rule: LVOThresholds = LVOThresholds()) -> dict:
    """Case-level call from measured components.

    Args:
        components: list of component dicts (``volume_mm3``, ``site``, optional ``mean_diameter_mm``).
        rule: ``LVOThresholds``.

    Returns:
        {"call": "no occlusion" | "LVO" | "non-LVO occlusion", "rule": str explaining the decision}.
    """
    big = deciding_component(components, rule)
    if big is None:
        return {"call": "no occlusion",
                "rule": f"no component >= {rule.min_volume_mm3:g} mm3 ({rule.describe()})"}
    site, note = refined_site(big, rule)
    why = f"largest component {float(big['volume_mm3']):.1f} mm3 at site {site}" + (f" ({note})" if note else "")
    diameter = big.get("mean_diameter_mm")
    if site in rule.lvo_sites:
        return {"call": "LVO", "rule": f"{why} in {list(rule.lvo_sites)} ({rule.describe()})"}
    if rule.min_lvo_diameter_mm is not None and diameter is not None and diameter >= rule.min_lvo_diameter_mm:
        return {"call": "LVO", "rule": f"{why}, diameter {diameter:.2f} mm >= {rule.min_lvo_diameter_mm:g} mm "
                                       f"({rule.describe()})"}
    return {"call": "non-LVO occlusion", "rule": f"{why}, not a large-vessel site ({rule.describe()})"}


def fit_lvo_thresholds(cases, base: LVOThresholds = LVOThresholds(), fit_diameter: bool = False,
                       ica_diameter_mm: float | None = None,
                       max_min_volume_mm3: float | None = MAX_FITTED_MIN_VOLUME_MM3) -> LVOThresholds:
    """Choose thresholds on validation cases (never on the test set).

    ``min_volume_mm3`` is chosen among 0, ``base.min_volume_mm3``, the midpoints between observed component volumes
    up to ``max_min_volume_mm3`` and that cap itself (None: no cap) to
    maximise Youden's J (sensitivity + specificity - 1) of occlusion vs no occlusion, ties broken by
    three-class accuracy and then by closeness to ``base.min_volume_mm3`` (the default 5 mm^3): the validation
    cases move the threshold only when they score another value higher. With ``fit_diameter`` the diameter
    threshold is then chosen the same way for LVO vs not LVO (None when it does not help).
    ``ica_diameter_mm`` (from ``fit_ica_calibre`` on reference masks) becomes ``min_ica_diameter_mm`` unless it
    lowers LVO-vs-not Youden's J or three-class accuracy on these validation cases.

    Args:
        cases: iterable of (components, true_call) with true_call one of ``CALLS``.
        base: thresholds whose other fields are kept.
    """
    cases = [(list(c), t) for c, t in cases]
    bad = sorted({t for _, t in cases if t not in CALLS})
    if bad:
        raise ValueError(f"true calls must be among {CALLS}, got {bad}")
    if not cases:
        raise ValueError("fit_lvo_thresholds needs at least one case")
    vols = sorted({float(c["volume_mm3"]) for comps, _ in cases for c in comps})
    cands = [0.0] + [0.5 * (a + b) for a, b in zip(vols[:-1], vols[1:])] + ([vols[-1] + 1.0] if vols else [])
    cands.append(float(base.min_volume_mm3))
    if max_min_volume_mm3 is not None:
        cands = [v for v in cands if v <= max_min_volume_mm3] + [float(max_min_volume_mm3)]

    def score(rule: LVOThresholds, positive: str):
        calls = [lvo_call(comps, rule)["call"] for comps, _ in cases]
        truth = [t for _, t in cases]
        if positive == "occlusion":
            p, t = [c != "no occlusion" for c in calls], [x != "no occlusion" for x in truth]
        else:
            p, t = [c == "LVO" for c in calls], [x == "LVO" for x in truth]
        tp = sum(a and b for a, b in zip(p, t))
        tn = sum(not a and not b for a, b in zip(p, t))
        sens = tp / max(sum(t), 1)
        spec = tn / max(len(t) - sum(t), 1)
        acc = float(np.mean([a == b for a, b in zip(calls, truth)]))
        return sens + spec - 1.0, acc

    best = max(cands, key=lambda v: (*score(replace(base, min_volume_mm3=v), "occlusion"),
                                     -abs(v - base.min_volume_mm3), -v))
    fitted = replace(base, min_volume_mm3=float(best))
    if fit_diameter:
        diams = sorted({float(c["mean_diameter_mm"]) for comps, _ in cases for c in comps
                        if c.get("mean_diameter_mm") is not None})
        options = [None] + diams
        fitted = max((replace(fitted, min_lvo_diameter_mm=d) for d in options),
                     key=lambda r: (*score(r, "LVO"), r.min_lvo_diameter_mm is None))
    if ica_diameter_mm is not None:
        gated = replace(fitted, min_ica_diameter_mm=float(ica_diameter_mm))
        with_gate, without = score(gated, "LVO"), score(replace(fitted, min_ica_diameter_mm=None), "LVO")
        if all(a >= b for a, b in zip(with_gate, without)):
            fitted = gated
    return fitted
