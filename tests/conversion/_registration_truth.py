"""The synthetic cohort's true NCCT -> CTA transform (``truth.json``) and the registration error against it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def truth_transform(truth: dict) -> sitk.Euler3DTransform:
    t = truth["ncct_transform"]
    tr = sitk.Euler3DTransform()
    tr.SetCenter([float(v) for v in t["center_mm"]])
    tr.SetRotation(*[float(v) for v in t["angles_rad"]])
    tr.SetTranslation([float(v) for v in t["translation_mm"]])
    return tr


def mean_tre_mm(estimated: sitk.Transform, truth: sitk.Transform, brain: sitk.Image, step: int = 7) -> float:
    """Mean distance (mm) between where both transforms send brain voxel centres of the CTA grid."""
    idx = np.argwhere(sitk.GetArrayFromImage(brain) > 0)[::step]
    pts = [brain.TransformIndexToPhysicalPoint([int(v) for v in p[::-1]]) for p in idx]
    return float(np.mean([np.linalg.norm(np.subtract(estimated.TransformPoint(p), truth.TransformPoint(p)))
                          for p in pts]))


def load_truth(case_dir: Path) -> dict:
    return json.loads((case_dir / "truth.json").read_text(encoding="utf-8"))
