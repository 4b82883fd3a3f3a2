"""Per-case numbers the benchmark needs beyond ``evaluate``'s ``metrics.csv``: false-positive components.

A false-positive component is a 26-connected component of the predicted mask (label > 0) that shares no voxel with
the reference mask (label > 0): a predicted "clot" where there is none. A clot-free case counts every predicted
component. Counted on the post-processed masks the table is computed from.
"""
from __future__ import annotations

import csv
import math
import os

import numpy as np
import SimpleITK as sitk

from nnunet_thrombus.masks import label_components

SUFFIX = ".nii.gz"


def false_positive_components(pred: np.ndarray, ref: np.ndarray) -> int:
    """Components of ``pred`` (bool/label array, any 3D shape) without a voxel in ``ref`` (same shape)."""
    pred = np.asarray(pred) > 0
    ref = np.asarray(ref) > 0
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} != reference shape {ref.shape}")
    labels, n = label_components(pred)
    if n == 0:
        return 0
    hit = np.unique(labels[ref & (labels > 0)])
    return int(n - hit.size)


def false_positive_folder(pred_dir, ref_dir, cases) -> dict:
    """``{case: false-positive components}`` for ``<dir>/<case>.nii.gz`` pairs (shapes must agree)."""
    out = {}
    for case in cases:
        pred = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(pred_dir, case + SUFFIX)))
        ref = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(ref_dir, case + SUFFIX)))
        try:
            out[case] = false_positive_components(pred, ref)
        except ValueError as exc:
            raise ValueError(f"case {case}: {exc}") from exc
    return out


def _number(value) -> float:
    if value in (None, "", "None", "nan", "NaN"):
        return float("nan")
    try:
        return float(value)
    except ValueError:
        return float("nan")


def read_case_rows(metrics_csv) -> list[dict]:
    """``evaluate``'s ``metrics.csv`` as dicts: ``dice`` and ``hd95_mm`` as floats (NaN where empty), ``ref_present``
    and ``pred_present`` as bools, everything else as written."""
    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for key in ("dice", "hd95_mm", "assd_mm", "ref_volume_mm3"):
            if key in r:
                r[key] = _number(r[key])
        for key in ("ref_present", "pred_present", "ref_lvo", "pred_lvo"):
            if key in r:
                r[key] = str(r[key]).strip().lower() in ("true", "1", "yes")
    return rows


def mean_or_nan(values) -> float:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return float(np.mean(vals)) if vals else float("nan")
