"""Rater study: STAPLE consensus of several raters, Dice of each rater and of the model against it.

Layout: ``raters_dir/<case>/rater_*.nii.gz`` (any number >= 2 of raters per case), the model's
prediction ``pred_dir/<case>.nii.gz``. Consensus: SimpleITK ``STAPLEImageFilter`` (foreground 1)
probability thresholded at 0.5 (Warfield et al. 2004).
"""
from __future__ import annotations

import os
from glob import glob

import numpy as np
import SimpleITK as sitk

from nnunet_thrombus.evaluation.statistics import median_iqr
from nnunet_thrombus.masks import dice


def staple_consensus(masks: list, threshold: float = 0.5):
    """STAPLE consensus of SimpleITK binary masks (nonzero = foreground) -> UInt8 SimpleITK image."""
    if len(masks) < 2:
        raise ValueError(f"STAPLE needs at least 2 rater masks, got {len(masks)}")
    binary = [sitk.Cast(m != 0, sitk.sitkUInt8) for m in masks]
    staple = sitk.STAPLEImageFilter()
    staple.SetForegroundValue(1)
    prob = staple.Execute(binary)
    return sitk.Cast(prob >= threshold, sitk.sitkUInt8)


def rater_study(raters_dir, pred_dir) -> dict:
    """Dice vs STAPLE consensus for each rater and for the model, per case and as median (IQR).

    Returns:
        {"n_cases", "per_case": {case: {rater: dice, ..., "model": dice}},
         "dice_vs_consensus": {rater or "model": median_iqr dict}}.
    """
    cases = sorted(d for d in os.listdir(raters_dir) if os.path.isdir(os.path.join(raters_dir, d)))
    if not cases:
        raise ValueError(f"no case folders in raters dir {raters_dir}")
    per_case, scores = {}, {}
    for case in cases:
        files = sorted(glob(os.path.join(raters_dir, case, "rater_*.nii.gz")))
        masks = [sitk.ReadImage(f) for f in files]
        consensus = sitk.GetArrayFromImage(staple_consensus(masks)) > 0
        row = {}
        for f, m in zip(files, masks):
            name = os.path.basename(f)[: -len(".nii.gz")]
            row[name] = dice(sitk.GetArrayFromImage(m) > 0, consensus)
        pred_file = os.path.join(pred_dir, f"{case}.nii.gz")
        if not os.path.isfile(pred_file):
            raise ValueError(f"rater study: no prediction {pred_file} for case {case}")
        pred = sitk.GetArrayFromImage(sitk.ReadImage(pred_file)) > 0
        if pred.shape != consensus.shape:
            raise ValueError(f"rater study case {case}: prediction shape {pred.shape} != rater shape {consensus.shape}")
        row["model"] = dice(pred, consensus)
        per_case[case] = row
        for k, v in row.items():
            scores.setdefault(k, []).append(v)
    order = sorted(k for k in scores if k != "model") + ["model"]
    return {"n_cases": len(cases), "per_case": per_case,
            "dice_vs_consensus": {k: median_iqr(np.asarray(scores[k])) for k in order}}
