"""Mask post-processing: keep or drop each predicted component by evidence, with thresholds chosen on validation.

The rule is :class:`~nnunet_thrombus.inference.component_selection.ComponentRule` (probability, volume, NCCT and
CTA density, artery contact, contrast downstream; never "the largest wins"). ``Postprocessing`` wraps it with the
switch ``rule``:

- ``evidence`` (default, also without a fitted file): each component kept or dropped with a reason;
- ``none``: the network's mask as it is (every component kept, reason "post-processing off").

:func:`choose_postprocessing` fits the thresholds on validation cases (``fit-lvo``: nnU-Net's
``fold_k/validation`` predictions, never the test set) and the result is stored as ``postprocessing.json`` in the
fine model folder; ``predict`` applies it, lists every component's keep/drop reason in ``report.json`` and names the
rule's source. Files written by earlier versions (rules ``largest`` and ``largest_min_volume``, which kept one
component by size) load as the default evidence rule: keeping the largest component is what this module replaces.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnunet_thrombus.evaluation.surface_metrics import dice
from nnunet_thrombus.inference.component_selection import ComponentRule, fit_component_rule, select_components

RULES = ("none", "evidence")
#: rules of earlier versions, read as the default evidence rule
LEGACY_RULES = ("largest", "largest_min_volume")
FILE = "postprocessing.json"


@dataclass(frozen=True)
class Postprocessing:
    """``rule`` one of :data:`RULES`; ``components`` the keep/drop thresholds used by ``evidence``."""

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

    def to_dict(self) -> dict:
        return {"rule": self.rule, "component_rule": self.components.to_dict()}

    def save(self, path, extra: dict | None = None) -> None:
        """JSON, written atomically (temp file in the same folder, then os.replace)."""
        from nnunet_thrombus.evaluation.atomic_io import write_json

        write_json(path, {**self.to_dict(), **(extra or {})})

    @classmethod
    def from_dict(cls, d: dict) -> "Postprocessing":
        rule = d.get("rule", "evidence")
        if rule in LEGACY_RULES:
            return cls()
        return cls(rule=rule, components=ComponentRule.from_dict(d.get("component_rule", {})))

    @classmethod
    def load(cls, path) -> "Postprocessing":
        with open(path) as fh:
            return cls.from_dict(json.load(fh))


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
    image_keys = ("probability", "ncct", "cta", "brain", "origin", "direction")
    per_case = []
    for c in cases:
        images = {k: c[k] for k in image_keys if c.get(k) is not None}
        per_case.append(validation_components(c["pred"], c["ref"], c["spacing"], **images))
    rule, info = fit_component_rule(per_case)
    chosen = Postprocessing("evidence", rule)
    scores = {}
    for name, pp in (("none", Postprocessing("none")), ("evidence", chosen)):
        scores[name] = float(np.mean([
            dice(pp.apply(c["pred"], c["spacing"], **{k: c[k] for k in image_keys if c.get(k) is not None}), c["ref"])
            for c in cases]))
    return chosen, {"fit": info, "validation_mean_dice": scores, "n_cases": len(cases)}


def _read_case_images(images_dir: Path, case: str) -> dict:
    """CTA (``_0000``), NCCT (``_0001``) and a brain mask (CTA > -1000 HU, the skull-stripped value) of ``case`` from
    an nnU-Net images folder, as (Z, Y, X) arrays; {} when the files are absent."""
    import SimpleITK as sitk

    cta_path, ncct_path = images_dir / f"{case}_0000.nii.gz", images_dir / f"{case}_0001.nii.gz"
    if not (cta_path.is_file() and ncct_path.is_file()):
        return {}
    cta_img = sitk.ReadImage(str(cta_path))
    cta = sitk.GetArrayFromImage(cta_img).astype(np.float32)
    return {"cta": cta, "ncct": sitk.GetArrayFromImage(sitk.ReadImage(str(ncct_path))).astype(np.float32),
            "brain": cta > -1000, "origin": cta_img.GetOrigin(), "direction": cta_img.GetDirection()}


def apply_to_folder(folder, rule_file, images_dir=None) -> int:
    """Apply the rule stored in ``rule_file`` to every ``*.nii.gz`` mask in ``folder``, in place (each written to a
    temp name, then renamed). ``images_dir``: the nnU-Net images folder of those cases (``<case>_0000`` CTA,
    ``_0001`` NCCT) so that the density, artery and contrast tests run; without it only volume counts. Returns the
    number of masks changed; 0 and nothing touched without ``rule_file``."""
    import SimpleITK as sitk

    folder, rule_file = Path(folder), Path(rule_file)
    if not rule_file.is_file():
        return 0
    rule, changed = Postprocessing.load(rule_file), 0
    for f in sorted(folder.glob("*.nii.gz")):
        img = sitk.ReadImage(str(f))
        before = sitk.GetArrayFromImage(img)
        case = f.name[: -len(".nii.gz")]
        images = _read_case_images(Path(images_dir), case) if images_dir is not None else {}
        if images and images["cta"].shape != before.shape:
            raise ValueError(f"case {case}: mask {before.shape} and images {images['cta'].shape} differ in shape; "
                             f"pass the images folder the masks were predicted from")
        after = rule.apply(before, img.GetSpacing()[::-1], **images)
        if np.array_equal(before > 0, after > 0):
            continue
        out = sitk.GetImageFromArray(after.astype(before.dtype))
        out.CopyInformation(img)
        from nnunet_thrombus.atomic_io import write_image

        write_image(out, f)
        changed += 1
    return changed
