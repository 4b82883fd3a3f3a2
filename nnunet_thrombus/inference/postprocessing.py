"""Mask post-processing chosen on validation cases, as nnU-Net chooses its own (never on the test set).

Candidates, applied to a binary thrombus mask (Z, Y, X) on a grid of ``spacing_zyx`` mm:

- ``none``: the network's mask as it is;
- ``largest``: the largest 26-connected component only (an acute occlusion is one clot; short CPU runs leave
  small false components along other vessels);
- ``largest_min_volume``: the largest component, and an empty mask when it is smaller than ``min_volume_mm3``
  (the occlusion threshold of the fitted LVO rule, so that mask and report agree: a "no occlusion" call comes
  with an empty mask).

:func:`choose_postprocessing` scores each candidate by the mean Dice over the validation cases (both empty = 1)
and keeps the simplest one within 0.005 of the best. The choice is stored as ``postprocessing.json`` in the fine
model folder; ``predict`` applies it and names it in every report.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from nnunet_thrombus.evaluation.surface_metrics import dice

RULES = ("none", "largest", "largest_min_volume")
FILE = "postprocessing.json"


@dataclass(frozen=True)
class Postprocessing:
    """``rule`` one of :data:`RULES`; ``min_volume_mm3`` used by ``largest_min_volume`` only."""

    rule: str = "none"
    min_volume_mm3: float = 0.0

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"postprocessing rule must be one of {RULES}, got {self.rule!r}")
        if not np.isfinite(self.min_volume_mm3) or self.min_volume_mm3 < 0:
            raise ValueError(f"min_volume_mm3 must be >= 0, got {self.min_volume_mm3}")

    def apply(self, mask: np.ndarray, spacing_zyx) -> np.ndarray:
        """Binary mask (Z, Y, X) -> post-processed uint8 mask of the same shape."""
        mask = np.asarray(mask) > 0
        if self.rule == "none" or not mask.any():
            return mask.astype(np.uint8)
        labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
        sizes = np.bincount(labels.ravel())[1:]
        keep = labels == int(np.argmax(sizes)) + 1
        if self.rule == "largest_min_volume":
            if float(sizes.max()) * float(np.prod(spacing_zyx)) < self.min_volume_mm3:
                keep[:] = False
        return keep.astype(np.uint8)

    def save(self, path, extra: dict | None = None) -> None:
        """JSON, written atomically (temp file in the same folder, then os.replace)."""
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump({**asdict(self), **(extra or {})}, fh, indent=1)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path) -> "Postprocessing":
        with open(path) as fh:
            d = json.load(fh)
        return cls(rule=d.get("rule", "none"), min_volume_mm3=float(d.get("min_volume_mm3", 0.0)))


def choose_postprocessing(cases, min_volume_mm3: float, tolerance: float = 0.005) -> tuple[Postprocessing, dict]:
    """Pick the rule with the best mean validation Dice (the simplest within ``tolerance`` of the best).

    ``cases``: iterable of (prediction mask, reference mask, spacing_zyx mm). Returns (rule, {rule: mean Dice}).
    """
    cases = list(cases)
    if not cases:
        raise ValueError("choose_postprocessing needs at least one validation case")
    candidates = [Postprocessing("none"), Postprocessing("largest"),
                  Postprocessing("largest_min_volume", float(min_volume_mm3))]
    scores = {c.rule: float(np.mean([dice(c.apply(p, sp), r) for p, r, sp in cases])) for c in candidates}
    best = max(scores.values())
    chosen = next(c for c in candidates if scores[c.rule] >= best - tolerance)
    return chosen, scores


def apply_to_folder(folder, rule_file) -> int:
    """Apply the rule stored in ``rule_file`` to every ``*.nii.gz`` mask in ``folder``, in place (each written to a
    temp name, then renamed). Returns the number of masks changed; 0 and nothing touched without ``rule_file``."""
    from pathlib import Path

    import SimpleITK as sitk

    folder, rule_file = Path(folder), Path(rule_file)
    if not rule_file.is_file():
        return 0
    rule, changed = Postprocessing.load(rule_file), 0
    for f in sorted(folder.glob("*.nii.gz")):
        img = sitk.ReadImage(str(f))
        before = sitk.GetArrayFromImage(img)
        after = rule.apply(before, img.GetSpacing()[::-1])
        if np.array_equal(before > 0, after > 0):
            continue
        out = sitk.GetImageFromArray(after.astype(before.dtype))
        out.CopyInformation(img)
        tmp = f.with_name(f.name[: -len(".nii.gz")] + ".tmp.nii.gz")
        sitk.WriteImage(out, str(tmp), True)
        os.replace(tmp, f)
        changed += 1
    return changed
