"""Choose the fine stage's ROI threshold on validation cases and store it with the model.

The ROI-restricted fine stage visits the coarse thrombus probability above a threshold, grown by half a fine patch
(:mod:`nnunet_thrombus.inference.roi_predictor`). A higher threshold runs fewer windows; too high a threshold cuts
clots off. Per threshold, each validation case gives the fraction of its reference clot inside the grown region
(``clot_coverage``) and the share of the full sliding window's windows that would run. Among the thresholds at which
every validation clot lies wholly inside, the chosen one runs the fewest windows, a case whose region is empty
counting as the whole image it then falls back to (``choose_threshold``); with none safe, the default stays.

``fit_roi_threshold`` runs each fold's coarse stage on that fold's validation cases (images from the raw
dataset's ``imagesTr``, references from ``labelsTr``; never the test set) and writes ``roi_threshold.json`` in the
fine-stage folder, where ``nnunet_thrombus predict`` reads it unless ``--roi-threshold`` is given.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nnunet_thrombus.model_folder import ROI_FILE as FILE  # the file in the fine-stage model folder
from nnunet_thrombus.model_folder import load_roi_threshold as load_threshold  # noqa: F401 (re-export)
from nnunet_thrombus.model_folder import roi_whole_image as whole_image_required  # noqa: F401 (re-export)
from nnunet_thrombus.model_folder import validation_cases

#: thresholds tried, low to high
THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.5)


def clot_coverage(coarse_prob: np.ndarray, reference: np.ndarray, threshold: float, grow_voxels) -> float:
    """Fraction of ``reference`` (bool, Z, Y, X) inside ``coarse_prob > threshold`` grown by ``grow_voxels`` per axis
    (box, on the same grid); 1.0 for an empty reference."""
    from scipy import ndimage

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


def fit_roi_threshold(coarse_dir, fine_dir, raw_dataset_dir, device: str = "cpu", thresholds=THRESHOLDS,
                      progress=print) -> dict:
    """Evaluate ``thresholds`` on every trained fold's validation cases, write ``fine_dir/roi_threshold.json`` and
    return its content: {"threshold", "default_kept", "n_cases", "folds", "table", "cases"}."""
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    from nnunet_thrombus.atomic_io import write_json
    from nnunet_thrombus.inference.cascade_predictor import ThrombusCascadePredictor
    from nnunet_thrombus.model_folder import DEFAULT_ROI_THRESHOLD

    fine_dir, raw = Path(fine_dir), Path(raw_dataset_dir)
    folds = validation_cases(fine_dir)
    if not folds:
        raise FileNotFoundError(f"no validation predictions under {fine_dir}/fold_*/validation: train (or validate "
                                f"with nnUNetv2_train ... --val) the fine stage first")
    io = SimpleITKIO()
    per_case = {}
    for fold, cases in folds.items():
        predictor = ThrombusCascadePredictor(str(coarse_dir), str(fine_dir), folds=(int(fold),), device=device,
                                             use_mirroring=False)
        for case in cases:
            files = sorted(str(p) for p in (raw / "imagesTr").glob(f"{case}_0*.nii.gz"))
            label = raw / "labelsTr" / f"{case}.nii.gz"
            if not files or not label.is_file():
                raise FileNotFoundError(f"validation case {case}: images or label missing under {raw}")
            data, props = io.read_images(files)
            reference = io.read_seg(str(label))[0][0] > 0
            per_case[case] = evaluate_case(predictor, data, props["spacing"], reference, thresholds)
            progress(f"{case} (fold {fold}): {format_case(per_case[case])}")
    chosen = choose_threshold(per_case, thresholds)
    result = {"threshold": chosen["threshold"] if chosen["threshold"] is not None else DEFAULT_ROI_THRESHOLD,
              "default_kept": chosen["threshold"] is None, "n_cases": len(per_case), "folds": sorted(folds),
              # no threshold keeps every validation clot inside the visited region: the coarse stage misses a clot
              # while it fires elsewhere, so a restricted fine stage would never look at it (issue 17)
              "whole_image": chosen["threshold"] is None,
              "rule": "among the thresholds at which every validation clot lies wholly inside the region the fine "
                      "stage visits, the one with the smallest median share of windows (whole-image fallback = 1)",
              "table": {str(t): v for t, v in chosen["table"].items()},
              "cases": {c: {str(t): v for t, v in r.items()} for c, r in per_case.items()}}
    write_json(fine_dir / FILE, result)
    return result


__all__ = ["THRESHOLDS", "FILE", "clot_coverage", "evaluate_case", "choose_threshold", "format_case", "format_table",
           "validation_cases", "fit_roi_threshold", "load_threshold", "whole_image_required"]
