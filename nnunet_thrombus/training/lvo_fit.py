"""Fit the case-level occlusion / LVO rule on validation predictions and store it with the model.

The rule (:class:`~nnunet_thrombus.measure.lvo.LVOThresholds`) must be chosen on validation folds only, never on
the test set. nnU-Net writes each fold's validation predictions to ``fold_k/validation/<case>.nii.gz``; here they
are measured (``measure_components_from_images``) against the true call from ``metadata.csv`` (site ``none`` ->
no occlusion, ICA / M1 -> LVO, other sites -> non-LVO occlusion), the thresholds are fitted
(``fit_lvo_thresholds``) and written to ``lvo_thresholds.json`` in the fine-stage model folder, where
``nnunet_thrombus predict`` reads them. ``lvo_fit.json`` beside it records the cases, folds and validation counts.
The same validation cases first fit the component keep/drop rule and the review flag
(:mod:`nnunet_thrombus.inference.trust_fit`: ``postprocessing.json``, and ``review_rule.json`` where nnU-Net saved
validation probabilities), and the LVO thresholds are then fitted on the components that rule keeps, as ``predict``
sees them.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

LVO_SITES = ("ICA", "M1")


def true_call(site: str) -> str:
    site = (site or "").strip()
    if site in ("", "none", "None"):
        return "no occlusion"
    return "LVO" if site in LVO_SITES else "non-LVO occlusion"


def _metadata_sites(path: Path) -> dict:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        key = "case" if "case" in (reader.fieldnames or []) else "case_id"
        if key not in (reader.fieldnames or []) or "site" not in reader.fieldnames:
            raise ValueError(f"{path} needs columns case (or case_id) and site; has {reader.fieldnames}")
        return {row[key]: row["site"] for row in reader}


def ica_reference_diameters(raw_dataset_dir, sites: dict) -> dict:
    """Mean diameter (mm, ``measure.length.mean_diameter_mm``: largest component) of every ``labelsTr`` reference
    clot whose metadata site is ICA, by case. Reference masks of the training set only: no model output."""
    import SimpleITK as sitk

    from nnunet_thrombus.measure.length import mean_diameter_mm

    out = {}
    for case, site in sorted(sites.items()):
        path = Path(raw_dataset_dir) / "labelsTr" / f"{case}.nii.gz"
        if (site or "").strip() != "ICA" or not path.is_file():
            continue
        label = sitk.ReadImage(str(path))
        arr = sitk.GetArrayFromImage(label) > 0
        if arr.any():
            out[case] = round(mean_diameter_mm(arr, label.GetSpacing()[::-1]), 3)
    return out


def fit_lvo_from_validation(fine_model_dir, raw_dataset_dir, metadata_csv=None) -> dict:
    """Fit and save the rule; returns ``{"thresholds": dict, "n_cases": int, "folds": [...], "counts": {...}}``.

    ``raw_dataset_dir``: the nnU-Net raw dataset (``imagesTr/<case>_0000`` CTA, ``_0001`` NCCT, ``metadata.csv``).
    """
    from nnunet_thrombus.atomic_io import write_json
    from nnunet_thrombus.inference.postprocessing import Postprocessing
    from nnunet_thrombus.inference.trust_fit import ValidationPredictor, fit_trust, load_validation_case
    from nnunet_thrombus.measure.lvo import ICA_CALIBRE_FRACTION, fit_ica_calibre, fit_lvo_thresholds, lvo_call
    from nnunet_thrombus.model_folder import LVO_FILE, validation_cases

    fine, raw = Path(fine_model_dir), Path(raw_dataset_dir)
    sites = _metadata_sites(Path(metadata_csv) if metadata_csv else raw / "metadata.csv")
    loaded, used_folds = [], []
    # no probabilities saved by nnU-Net (--npz): a cascade predicts its validation cases itself (trust_fit)
    have_npz = any(fine.glob("fold_*/validation/*.npz"))
    predictor = None if have_npz else ValidationPredictor.beside(fine)
    for fold, fold_cases in validation_cases(fine).items():
        used_folds.append(f"fold_{fold}")
        for case in fold_cases:
            if case not in sites:
                raise ValueError(f"validation case {case} has no row in metadata.csv ({raw / 'metadata.csv'})")
            loaded.append(load_validation_case(fine / f"fold_{fold}" / "validation" / f"{case}.nii.gz", raw, case,
                                               predictor, fold))
    if not loaded:
        raise FileNotFoundError(f"no validation predictions under {fine}/fold_*/validation: train (or validate with "
                                f"nnUNetv2_train ... --val) the fine stage first")
    # components first (postprocessing.json, review_rule.json), then the LVO rule on the components predict keeps
    trust = fit_trust(loaded, fine)
    post = Postprocessing.from_dict(trust["postprocessing"]) if trust["postprocessing"] else Postprocessing()
    cases = []
    for c in loaded:
        images = {k: c[k] for k in ("probability", "ncct", "cta", "brain", "origin", "direction")}
        cases.append((c["case"], post.select(c["pred"], c["spacing"], **images)["kept"], true_call(sites[c["case"]])))
    ica_refs = ica_reference_diameters(raw, sites)
    ica_floor = fit_ica_calibre(ica_refs.values())
    rule = fit_lvo_thresholds([(c, t) for _, c, t in cases], ica_diameter_mm=ica_floor)
    rule.save(fine / LVO_FILE)
    counts = {}
    for _, comps, truth in cases:
        call = lvo_call(comps, rule)["call"]
        counts[f"{truth} -> {call}"] = counts.get(f"{truth} -> {call}", 0) + 1
    postprocessing = trust["postprocessing"]
    info = {"thresholds": json.loads((fine / LVO_FILE).read_text()), "postprocessing": postprocessing,
            "review": None if trust["review"] is None else {k: v for k, v in trust["review"].items() if k != "cases"},
            "n_cases": len(cases),
            "ica_calibre": {"reference_diameters_mm": ica_refs, "candidate_mm": ica_floor,
                            "kept": rule.min_ica_diameter_mm is not None,
                            "note": f"{ICA_CALIBRE_FRACTION:g} x the median mean diameter of the labelsTr ICA clots; "
                                    "kept unless it lowers the validation LVO scores"},
            "folds": used_folds, "cases": [c for c, _, _ in cases], "counts_truth_to_call": counts,
            "note": "fitted on nnU-Net validation predictions only (never on the test set)"}
    write_json(fine / "lvo_fit.json", info, indent=1)
    return info
