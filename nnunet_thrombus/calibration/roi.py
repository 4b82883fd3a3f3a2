"""The fine stage's ROI threshold: the rule, where it is stored, and its fit on validation cases.

The ROI-restricted fine stage visits the coarse thrombus probability above a threshold, grown by half a fine patch
(:mod:`nnunet_thrombus.inference.roi_predictor`). A higher threshold runs fewer windows; too high a threshold cuts
clots off. Per threshold, each validation case gives the fraction of its reference clot inside the grown region
(``clot_coverage``) and the share of the full sliding window's windows that would run. Among the thresholds at which
every validation clot lies wholly inside, the chosen one runs the fewest windows, a case whose region is empty
counting as the whole image it then falls back to (``choose_threshold``); with none safe, the default stays and
``whole_image`` is set: the coarse stage missed a clot while it fired elsewhere, so ``predict`` runs the fine stage
on the whole image unless the user gives ``--roi-threshold``.

:func:`fit_roi_threshold` runs each fold's coarse stage (a predictor the caller builds, see
:mod:`nnunet_thrombus.inference.validation_fit`) on that fold's validation cases (images from the raw dataset's
``imagesTr``, references from ``labelsTr``; never the test set) and writes ``roi_threshold.json``
(:class:`ROIThreshold` plus the fit's table) in the fine-stage folder. :func:`resolve_roi_threshold` is the one
place the default (:data:`DEFAULT_ROI_THRESHOLD`) is applied.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnunet_thrombus.calibration.artifact import FittedArtifact
from nnunet_thrombus.vocabulary import DEFAULT_ROI_THRESHOLD

log = logging.getLogger(__name__)

#: thresholds tried, low to high
THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.5)


@dataclass(frozen=True)
class ROIThreshold(FittedArtifact):
    """``threshold``: coarse probability (0, 1) above which the fine stage looks; ``whole_image``: no threshold kept
    every validation clot inside the visited region, so the fine stage should run on the whole image."""

    FILE = "roi_threshold.json"
    RECORD_KEYS = frozenset({"default_kept", "n_cases", "folds", "rule", "table", "cases"})

    threshold: float = DEFAULT_ROI_THRESHOLD
    whole_image: bool = False

    def __post_init__(self):
        t = float(self.threshold)
        if not 0.0 < t < 1.0:
            raise ValueError(f"threshold {self.threshold} is not a probability in (0, 1)")
        object.__setattr__(self, "threshold", t)
        object.__setattr__(self, "whole_image", bool(self.whole_image))


def load_roi_threshold(fine_dir) -> ROIThreshold | None:
    """The rule in ``fine_dir/roi_threshold.json``, None without the file; :class:`CalibrationFileError` naming the
    file when it is not valid."""
    path = Path(fine_dir) / ROIThreshold.FILE
    return ROIThreshold.load(path) if path.is_file() else None


def resolve_roi_threshold(fine_dir=None, override: float | None = None) -> tuple[float, str]:
    """(threshold, source): ``override`` ("command line"), else the model's ``roi_threshold.json``, else
    :data:`DEFAULT_ROI_THRESHOLD` ("default")."""
    if override is not None:
        return float(override), "command line"
    fitted = load_roi_threshold(fine_dir) if fine_dir is not None else None
    if fitted is not None:
        return fitted.threshold, f"{Path(fine_dir).name}/{ROIThreshold.FILE}"
    return DEFAULT_ROI_THRESHOLD, "default"


def clot_coverage(coarse_prob: np.ndarray, reference: np.ndarray, threshold: float, grow_voxels) -> float:
    """Fraction of ``reference`` (bool, Z, Y, X) inside ``coarse_prob > threshold`` grown by ``grow_voxels`` per axis
    (box, on the same grid); 1.0 for an empty reference."""
    reference = np.asarray(reference, dtype=bool)
    if not reference.any():
        return 1.0
    size = [2 * int(g) + 1 for g in grow_voxels]
    region = ndimage.maximum_filter((coarse_prob > threshold).view(np.uint8), size=size, mode="constant")
    return float(np.count_nonzero(region.astype(bool) & reference) / np.count_nonzero(reference))


def evaluate_case(predictor, images: np.ndarray, spacing, reference: np.ndarray, thresholds=THRESHOLDS) -> dict:
    """For one case (``images`` (C, Z, Y, X) float32, ``spacing`` (z, y, x) mm, ``reference`` bool on that grid):
    ``{threshold: {"coverage": float, "windows": (run, full) or None when the region is empty}}``; an empty region
    means the whole-image fallback, coverage 1.
    ``predictor``: a ``ThrombusCascadePredictor``; its ``roi_threshold`` is restored afterwards."""
    prob, fine = predictor.coarse_stage(np.asarray(images, dtype=np.float32), spacing)
    shape = fine["data"].shape[1:]
    scale = np.asarray(predictor.fine.configuration_manager.spacing, float) / np.asarray(spacing, float)
    grow = [int(np.ceil(m * s)) for m, s in zip(predictor.fine.margin, scale)]  # the margin on the input grid
    out, saved = {}, predictor.roi_threshold
    try:
        for t in thresholds:
            predictor.roi_threshold = t
            roi = predictor.candidate_region(prob, fine["data_properties"], shape)
            windows = None
            if roi is not None:
                predictor.fine.roi = roi
                _, _, n_run, n_full = predictor.fine.plan_windows(shape)
                windows = (n_run, n_full)
            # an empty region sends predict to the whole image (the fallback), which holds the clot
            out[t] = {"coverage": clot_coverage(prob, reference, t, grow) if roi is not None else 1.0,
                      "windows": windows}
    finally:
        predictor.roi_threshold = saved
        predictor.fine.roi = None
    return out


def choose_threshold(per_case: dict, thresholds=THRESHOLDS) -> dict:
    """``per_case``: {case: evaluate_case output}. A threshold is safe when every validation clot lies wholly inside
    the region the fine stage visits; among the safe ones the chosen threshold runs the fewest windows (median share
    of the full sliding window, a whole-image fallback counting as all of it), the highest on a tie. Returns
    {"threshold": the choice or None, "table": {threshold: {"worst_coverage", "median_window_share", "fallbacks"}}}.
    """
    table = {}
    for t in thresholds:
        rows = [per_case[c][t] for c in per_case]
        shares = [r["windows"][0] / r["windows"][1] if r["windows"] else 1.0 for r in rows]
        table[t] = {"worst_coverage": min(r["coverage"] for r in rows) if rows else float("nan"),
                    "median_window_share": float(np.median(shares)) if shares else None,
                    "fallbacks": sum(r["windows"] is None for r in rows)}
    safe = [t for t in thresholds if table[t]["worst_coverage"] >= 1.0]
    best = min(safe, key=lambda t: (table[t]["median_window_share"], -t)) if safe else None
    return {"threshold": best, "table": table}


def format_case(result: dict) -> str:
    """One line for an ``evaluate_case`` result: windows and clot coverage per threshold."""
    return " | ".join(f"t={t}: " + (f"{r['windows'][0]}/{r['windows'][1]} windows" if r["windows"] else
                                    "fallback (whole image)") + f", clot inside {r['coverage']:.2f}"
                      for t, r in result.items())


def format_table(table: dict) -> list[str]:
    """One line per threshold of ``choose_threshold``'s table (keys may be numbers or strings)."""
    lines = []
    for t, row in table.items():
        share = row["median_window_share"]
        lines.append(f"t={t}: every validation clot inside: {row['worst_coverage'] >= 1.0} (worst "
                     f"{row['worst_coverage']:.2f}); median share of windows {'-' if share is None else f'{share:.2f}'}"
                     f"; whole-image fallbacks {row['fallbacks']}")
    return lines


def read_validation_case(raw_dataset_dir, case: str) -> tuple[np.ndarray, tuple, np.ndarray]:
    """(images (C, Z, Y, X) float32 from ``imagesTr/<case>_0*``, spacing (z, y, x) mm, reference bool (Z, Y, X) from
    ``labelsTr``) of a training case; ``FileNotFoundError`` naming what is missing."""
    raw = Path(raw_dataset_dir)
    files = sorted((raw / "imagesTr").glob(f"{case}_0*.nii.gz"))
    label = raw / "labelsTr" / f"{case}.nii.gz"
    if not files or not label.is_file():
        raise FileNotFoundError(f"validation case {case}: images or label missing under {raw}")
    first = sitk.ReadImage(str(files[0]))
    images = np.stack([sitk.GetArrayFromImage(first)] + [sitk.GetArrayFromImage(sitk.ReadImage(str(f)))
                                                        for f in files[1:]]).astype(np.float32)
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(label))) > 0
    return images, tuple(first.GetSpacing()[::-1]), reference


def fit_roi_threshold(fine_dir, raw_dataset_dir, folds: dict, make_predictor, thresholds=THRESHOLDS,
                      progress=log.info) -> dict:
    """Evaluate ``thresholds`` on every fold's validation cases, write ``fine_dir/roi_threshold.json`` and return its
    content: {"threshold", "whole_image", "default_kept", "n_cases", "folds", "rule", "table", "cases"}.

    ``folds``: {fold tag: [case ids]} (``model_folder.validation_cases``); ``make_predictor(fold)``: the cascade
    predictor of that fold (``evaluate_case``'s ``predictor``)."""
    if not folds:
        raise FileNotFoundError(f"no validation predictions under {fine_dir}/fold_*/validation: train (or validate "
                                f"with nnUNetv2_train ... --val) the fine stage first")
    per_case = {}
    for fold, cases in folds.items():
        predictor = make_predictor(fold)
        for case in cases:
            data, spacing, reference = read_validation_case(raw_dataset_dir, case)
            per_case[case] = evaluate_case(predictor, data, spacing, reference, thresholds)
            progress(f"{case} (fold {fold}): {format_case(per_case[case])}")
    chosen = choose_threshold(per_case, thresholds)
    kept = chosen["threshold"] is not None
    rule = ROIThreshold(threshold=chosen["threshold"] if kept else DEFAULT_ROI_THRESHOLD, whole_image=not kept)
    record = {"default_kept": not kept, "n_cases": len(per_case), "folds": sorted(folds),
              "rule": "among the thresholds at which every validation clot lies wholly inside the region the fine "
                      "stage visits, the one with the smallest median share of windows (whole-image fallback = 1)",
              "table": {str(t): v for t, v in chosen["table"].items()},
              "cases": {c: {str(t): v for t, v in r.items()} for c, r in per_case.items()}}
    rule.save(Path(fine_dir) / ROIThreshold.FILE, record)
    return rule.to_file_dict(record)
