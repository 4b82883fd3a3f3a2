"""Case-level occlusion call: "no occlusion", "LVO" or "non-LVO occlusion".

Rule (``LVOThresholds``, documented in docs/metrics.md):

1. components with volume below ``min_volume_mm3`` are ignored (specks of false positives);
   none left -> "no occlusion";
2. the remaining component with the largest volume decides: "LVO" when its site is in ``lvo_sites``
   (ICA, M1) or, if ``min_lvo_diameter_mm`` is set, when its mean diameter reaches that calibre
   (large vessels are wide); otherwise "non-LVO occlusion".

Thresholds are fitted on validation folds only (``fit_lvo_thresholds``) and stored as JSON next to
the model. Components are the dicts of ``measure.components.measure_components`` (keys used:
``volume_mm3``, ``site``, ``mean_diameter_mm``).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import numpy as np

CALLS = ("no occlusion", "LVO", "non-LVO occlusion")


@dataclass(frozen=True)
class LVOThresholds:
    """Thresholds of the occlusion rule; volumes in mm^3, diameters in mm."""

    min_volume_mm3: float = 5.0
    lvo_sites: tuple = ("ICA", "M1")
    min_lvo_diameter_mm: float | None = None

    def __post_init__(self):
        if not np.isfinite(self.min_volume_mm3) or self.min_volume_mm3 < 0:
            raise ValueError(f"min_volume_mm3 must be >= 0, got {self.min_volume_mm3}")
        if self.min_lvo_diameter_mm is not None and self.min_lvo_diameter_mm <= 0:
            raise ValueError(f"min_lvo_diameter_mm must be positive or None, got {self.min_lvo_diameter_mm}")
        object.__setattr__(self, "lvo_sites", tuple(self.lvo_sites))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lvo_sites"] = list(self.lvo_sites)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LVOThresholds":
        unknown = set(d) - {"min_volume_mm3", "lvo_sites", "min_lvo_diameter_mm"}
        if unknown:
            raise ValueError(f"unknown LVO threshold keys {sorted(unknown)}")
        return cls(**d)

    def save(self, path) -> None:
        """Write as JSON atomically (:mod:`nnunet_thrombus.atomic_io`)."""
        from nnunet_thrombus.atomic_io import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path) -> "LVOThresholds":
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def describe(self) -> str:
        rule = f"largest component >= {self.min_volume_mm3:g} mm3 is an occlusion; LVO if site in {list(self.lvo_sites)}"
        if self.min_lvo_diameter_mm is not None:
            rule += f" or mean diameter >= {self.min_lvo_diameter_mm:g} mm"
        return rule


def lvo_call(components, rule: LVOThresholds = LVOThresholds()) -> dict:
    """Case-level call from measured components.

    Args:
        components: list of component dicts (``volume_mm3``, ``site``, optional ``mean_diameter_mm``).
        rule: ``LVOThresholds``.

    Returns:
        {"call": "no occlusion" | "LVO" | "non-LVO occlusion", "rule": str explaining the decision}.
    """
    kept = [c for c in components if float(c["volume_mm3"]) >= rule.min_volume_mm3]
    if not kept:
        return {"call": "no occlusion",
                "rule": f"no component >= {rule.min_volume_mm3:g} mm3 ({rule.describe()})"}
    big = max(kept, key=lambda c: float(c["volume_mm3"]))
    why = f"largest component {float(big['volume_mm3']):.1f} mm3 at site {big.get('site')}"
    diameter = big.get("mean_diameter_mm")
    if big.get("site") in rule.lvo_sites:
        return {"call": "LVO", "rule": f"{why} in {list(rule.lvo_sites)} ({rule.describe()})"}
    if rule.min_lvo_diameter_mm is not None and diameter is not None and diameter >= rule.min_lvo_diameter_mm:
        return {"call": "LVO", "rule": f"{why}, diameter {diameter:.2f} mm >= {rule.min_lvo_diameter_mm:g} mm "
                                       f"({rule.describe()})"}
    return {"call": "non-LVO occlusion", "rule": f"{why}, not a large-vessel site ({rule.describe()})"}


def fit_lvo_thresholds(cases, base: LVOThresholds = LVOThresholds(), fit_diameter: bool = False) -> LVOThresholds:
    """Choose thresholds on validation cases (never on the test set).

    ``min_volume_mm3`` is chosen among 0 and midpoints between observed component volumes to
    maximise Youden's J (sensitivity + specificity - 1) of occlusion vs no occlusion, ties broken by
    three-class accuracy and then the smaller threshold. With ``fit_diameter`` the diameter
    threshold is then chosen the same way for LVO vs not LVO (None when it does not help).

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

    best = max(cands, key=lambda v: (*score(replace(base, min_volume_mm3=v), "occlusion"), -v))
    fitted = replace(base, min_volume_mm3=float(best))
    if fit_diameter:
        diams = sorted({float(c["mean_diameter_mm"]) for comps, _ in cases for c in comps
                        if c.get("mean_diameter_mm") is not None})
        options = [None] + diams
        fitted = max((replace(fitted, min_lvo_diameter_mm=d) for d in options),
                     key=lambda r: (*score(r, "LVO"), r.min_lvo_diameter_mm is None))
    return fitted
