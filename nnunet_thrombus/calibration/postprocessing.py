"""Mask post-processing rule: keep or drop each predicted component by evidence, thresholds chosen on validation.

The rule is :class:`~nnunet_thrombus.calibration.components.ComponentRule` (probability, volume, NCCT and CTA
density, artery contact, contrast downstream; never "the largest wins"). ``Postprocessing`` wraps it with the
switch ``rule``:

- ``evidence`` (default, also without a fitted file): each component kept or dropped with a reason;
- ``none``: the network's mask as it is (every component kept, reason "post-processing off").

:func:`choose_postprocessing` fits the thresholds on validation cases (``fit-lvo``: nnU-Net's
``fold_k/validation`` predictions, never the test set); the result is stored as ``postprocessing.json`` in the
fine model folder (``{"rule", "component_rule": {...}, "schema_version"}`` plus the fit's record); ``predict``
applies it, lists every component's keep/drop reason in ``report.json`` and names the rule's source. Files written
by earlier versions (rules ``largest`` and ``largest_min_volume``, which kept one component by size) load as the
default evidence rule: keeping the largest component is what this rule replaces.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnunet_thrombus.calibration.artifact import FittedArtifact
from nnunet_thrombus.calibration.components import ComponentRule, fit_component_rule, select_components
from nnunet_thrombus.masks import dice

RULES = ("none", "evidence")
#: rules of earlier versions, read as the default evidence rule
LEGACY_RULES = ("largest", "largest_min_volume")
#: keys of the array dicts the rule reads besides the mask (arrays (Z, Y, X) on the mask's grid, and its geometry)
IMAGE_KEYS = ("probability", "ncct", "cta", "brain", "origin", "direction")


@dataclass(frozen=True)
class Postprocessing(FittedArtifact):
    """``rule`` one of :data:`RULES`; ``components`` the keep/drop thresholds used by ``evidence``."""

    FILE = "postprocessing.json"
    KEYS = {"components": "component_rule"}
    #: the fit's record beside the rule (``min_volume_mm3``: the size rules of earlier versions)
    RECORD_KEYS = frozenset({"fit", "validation_mean_dice", "n_cases", "n_with_probabilities", "note",
                             "min_volume_mm3"})

    rule: str = "evidence"
    components: ComponentRule = field(default_factory=ComponentRule)

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"postprocessing rule must be one of {RULES}, got {self.rule!r}")

    def select(self, mask: np.ndarray, spacing_zyx, *, probability=None, ncct=None, cta=None, brain=None,
               origin=(0.0, 0.0, 0.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), reference=None) -> dict:
        """``select_components`` under this rule (``none``: every component kept). Arrays (Z, Y, X) on one grid;
        ``reference``: a true clot mask, for ``overlaps_reference`` on each component (fitting, evaluation)."""
        rule = self.components
        if self.rule == "none":
            rule = ComponentRule(calcification_hu=1e9, max_cta_hu=1e9, require_artery=False)
        out = select_components(mask, spacing_zyx, rule=rule, probability=probability, ncct=ncct, cta=cta,
                                brain=brain, origin=origin, direction=direction, reference=reference)
        if self.rule == "none":
            for row in out["kept"]:
                row["reason"] = "post-processing off: " + row["reason"]
        return out

    def apply(self, mask: np.ndarray, spacing_zyx, **images) -> np.ndarray:
        """Binary mask (Z, Y, X) -> uint8 mask of the kept components (``images``: keywords of :meth:`select`)."""
        return self.select(mask, spacing_zyx, **images)["mask"]

    @classmethod
    def from_dict(cls, d: dict) -> "Postprocessing":
        if isinstance(d, dict) and d.get("rule") in LEGACY_RULES:
            return cls()
        return super().from_dict(d)

    @classmethod
    def split_file_dict(cls, d: dict) -> tuple[dict, dict]:
        if isinstance(d, dict) and d.get("rule") in LEGACY_RULES:
            return {"rule": d["rule"]}, {}
        return super().split_file_dict(d)


def validation_components(pred, ref, spacing_zyx, **images) -> list[dict]:
    """Every component of ``pred`` with its measurements, evidence and ``overlaps_reference`` (any voxel shared with
    the reference ``ref``), for fitting. ``images``: keywords of :meth:`Postprocessing.select`."""
    return Postprocessing("none").select(pred, spacing_zyx, reference=ref, **images)["kept"]


def choose_postprocessing(cases) -> tuple[Postprocessing, dict]:
    """Fit the evidence rule on validation ``cases``: iterable of dicts {"pred", "ref", "spacing" (z, y, x mm),
    optional "probability", "ncct", "cta", "brain", "origin", "direction"} (arrays (Z, Y, X)).

    Returns (Postprocessing, info) with info {"fit": fit_component_rule's info, "validation_mean_dice": {"none",
    "evidence"}, "n_cases"}.
    """
    cases = list(cases)
    if not cases:
        raise ValueError("choose_postprocessing needs at least one validation case")
    per_case = []
    for c in cases:
        images = {k: c[k] for k in IMAGE_KEYS if c.get(k) is not None}
        per_case.append(validation_components(c["pred"], c["ref"], c["spacing"], **images))
    rule, info = fit_component_rule(per_case)
    chosen = Postprocessing("evidence", rule)
    scores = {}
    for name, pp in (("none", Postprocessing("none")), ("evidence", chosen)):
        scores[name] = float(np.mean([
            dice(pp.apply(c["pred"], c["spacing"], **{k: c[k] for k in IMAGE_KEYS if c.get(k) is not None}), c["ref"])
            for c in cases]))
    return chosen, {"fit": info, "validation_mean_dice": scores, "n_cases": len(cases)}
