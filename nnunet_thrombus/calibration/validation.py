"""Fit the component rule, the review flag and the LVO thresholds on validation predictions; store them with the model.

Input: nnU-Net's validation predictions of the fine stage, ``fold_k/validation/<case>.nii.gz`` (each case predicted by
the one fold that did not train on it; never the test set), with the case's images from the raw dataset's
``imagesTr`` (``_0000`` CTA, ``_0001`` NCCT; brain = CTA above -1000 HU, the skull-stripped value), its reference
from ``labelsTr`` and its site from ``metadata.csv`` (``none`` -> no occlusion, ICA / M1 -> LVO, other sites ->
non-LVO occlusion). Where nnU-Net also saved the probabilities (``nnUNetv2_train ... --val --npz`` writes
``<case>.npz``), the probability tests of the component rule and the review flag are fitted too. Without them a
``predictor`` given by the caller (:class:`nnunet_thrombus.inference.validation_fit.ValidationPredictor`: each case
predicted by its own fold's cascade, as ``predict`` runs it) supplies probability and mask; with neither, the review
flag keeps its default thresholds and the report says so (``review.source`` "default").

Order (:func:`fit_validation_rules`): the component keep/drop rule first (``postprocessing.json``), then the LVO
thresholds on the components it keeps, as ``predict`` sees them (``lvo_thresholds.json``), then the review flag
(``review_rule.json``, only with probabilities) on those components and that rule's calls: a wrong LVO call is
one of the bad cases it must catch, and the call's own flags (``calibration.lvo.call_flags``) are among its
candidate flags. ``lvo_fit.json`` records cases, folds and the validation counts. This module reads files and
fits; it runs no network.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_thrombus.atomic_io import write_json
from nnunet_thrombus.calibration.lvo import (ICA_CALIBRE_FRACTION, LVOThresholds, fit_ica_calibre, fit_lvo_thresholds,
                                             lvo_call, review_flags)
from nnunet_thrombus.calibration.model import FIT_RECORD_FILE
from nnunet_thrombus.calibration.postprocessing import IMAGE_KEYS, Postprocessing, choose_postprocessing
from nnunet_thrombus.calibration.review import ReviewRule, case_uncertainty, fit_review_rule, is_bad
from nnunet_thrombus.masks import dice
from nnunet_thrombus.measure.length import mean_diameter_mm
from nnunet_thrombus.vocabulary import true_call

NOTE = "fitted on nnU-Net validation predictions only (never on the test set)"


# ----------------------------------------------------------------------------------------------- reading cases
def metadata_sites(path: Path) -> dict:
    """{case: site} from a ``metadata.csv`` with columns ``case`` (or ``case_id``) and ``site``."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        key = "case" if "case" in (reader.fieldnames or []) else "case_id"
        if key not in (reader.fieldnames or []) or "site" not in reader.fieldnames:
            raise ValueError(f"{path} needs columns case (or case_id) and site; has {reader.fieldnames}")
        return {row[key]: row["site"] for row in reader}


def validation_probability(pred_file: Path) -> np.ndarray | None:
    """Thrombus probability (Z, Y, X) from nnU-Net's ``<case>.npz`` beside a validation mask (``probabilities``,
    (C, Z, Y, X), the foreground classes summed); None when there is no such file."""
    npz = pred_file.with_name(pred_file.name[: -len(".nii.gz")] + ".npz")
    if not npz.is_file():
        return None
    with np.load(npz) as f:
        probs = np.asarray(f["probabilities"], dtype=np.float32)
    return probs[1:].sum(axis=0)


def load_validation_case(pred_file: Path, raw: Path, case: str, predictor=None, fold: str | None = None) -> dict:
    """One validation case as the dict ``choose_postprocessing`` takes (``ref`` None when ``labelsTr`` lacks it).
    Without nnU-Net's ``<case>.npz``, a ``predictor`` (``probability(fold, images (C, Z, Y, X), spacing)``, with the
    case's ``fold``) supplies probability and mask (p > 0.5)."""
    raw = Path(raw)
    ref = raw / "labelsTr" / f"{case}.nii.gz"
    label = sitk.ReadImage(str(pred_file))
    cta_img = sitk.ReadImage(str(raw / "imagesTr" / f"{case}_0000.nii.gz"))
    cta = sitk.GetArrayFromImage(cta_img).astype(np.float32)
    pred = sitk.GetArrayFromImage(label) > 0
    ncct = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "imagesTr" / f"{case}_0001.nii.gz"))).astype(np.float32)
    prob = validation_probability(Path(pred_file))
    if prob is None and predictor is not None:
        prob = predictor.probability(fold, np.stack([cta, ncct]), cta_img.GetSpacing()[::-1])
        pred = prob > 0.5
    if prob is not None and prob.shape != pred.shape:
        raise ValueError(f"validation case {case}: probabilities {prob.shape} and mask {pred.shape} differ in shape")
    return {"case": case, "pred": pred,
            "ref": sitk.GetArrayFromImage(sitk.ReadImage(str(ref))) > 0 if ref.is_file() else None,
            "spacing": label.GetSpacing()[::-1], "origin": label.GetOrigin(), "direction": label.GetDirection(),
            "cta": cta, "brain": cta > -1000, "ncct": ncct, "probability": prob}


def ica_reference_diameters(raw_dataset_dir, sites: dict) -> dict:
    """Mean diameter (mm, ``measure.length.mean_diameter_mm``: largest component) of every ``labelsTr`` reference
    clot whose metadata site is ICA, by case. Reference masks of the training set only: no model output."""
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


# ----------------------------------------------------------------------------------------------------- fitting
def _select(case: dict, postprocessing: Postprocessing) -> dict:
    """``postprocessing.select`` on a loaded validation case (its mask, spacing and images)."""
    return postprocessing.select(case["pred"], case["spacing"], **{k: case[k] for k in IMAGE_KEYS})


def review_cases(cases, postprocessing: Postprocessing, lvo_rule: LVOThresholds | None = None,
                 sites: dict | None = None, selections: dict | None = None) -> list[dict]:
    """Per validation case with a probability map: its uncertainty after ``postprocessing``, its case flags (the
    component selection's and those of ``lvo_rule``'s call) and whether it is a bad case
    (:func:`~nnunet_thrombus.calibration.review.is_bad`; with ``sites`` ({case: metadata site}) a wrong LVO call
    counts too), for ``fit_review_rule``. ``lvo_rule`` None: the default thresholds. ``selections``: {case:
    ``postprocessing``'s selection} already made (the others are made here)."""
    lvo_rule = lvo_rule or LVOThresholds()
    selections = selections or {}
    out = []
    for c in cases:
        if c.get("probability") is None:
            continue
        sel = selections.get(c["case"]) or _select(c, postprocessing)
        unc = case_uncertainty(c["probability"], sel["mask"], c["brain"])
        d = dice(sel["mask"], c["ref"])
        lvo_wrong = False
        if sites is not None:
            called = lvo_call(sel["kept"], lvo_rule)["call"] == "LVO"
            lvo_wrong = called != (true_call(sites[c["case"]]) == "LVO")
        out.append({"case": c["case"], "uncertainty": unc, "dice": d, "lvo_wrong": lvo_wrong,
                    "flags": review_flags(sel, lvo_rule),
                    "bad": is_bad(d, bool(c["ref"].any()), bool(sel["mask"].any()), lvo_wrong)})
    return out


def fit_component_rule_on(cases, fine_dir) -> tuple[Postprocessing, dict | None]:
    """Fit the component rule on loaded validation ``cases`` (``load_validation_case`` dicts; those without a
    reference are skipped) and write ``postprocessing.json`` into ``fine_dir``. Returns (rule, its record), or
    (the default rule, None) when no case has a reference."""
    cases = [c for c in cases if c.get("ref") is not None]
    if not cases:
        return Postprocessing(), None
    chosen, info = choose_postprocessing(cases)
    chosen.save(Path(fine_dir) / Postprocessing.FILE,
                {**info, "n_with_probabilities": sum(c["probability"] is not None for c in cases), "note": NOTE})
    return chosen, {**chosen.to_dict(), **info}


def fit_review_on(cases, postprocessing: Postprocessing, fine_dir, lvo_rule: LVOThresholds | None = None,
                  sites: dict | None = None, selections: dict | None = None) -> dict | None:
    """Fit the review flag on loaded validation ``cases`` with probabilities and a reference (:func:`review_cases`,
    which takes ``selections``) and write ``review_rule.json`` into ``fine_dir``; returns its content, or None when
    no case has both."""
    rows = review_cases([c for c in cases if c.get("ref") is not None], postprocessing, lvo_rule, sites, selections)
    if not rows:
        return None
    rule, rinfo = fit_review_rule(rows)
    record = {**rinfo, "note": NOTE,
              "cases": {r["case"]: {"score": r["uncertainty"]["score"], "kind": r["uncertainty"]["kind"],
                                    "dice": r["dice"], "lvo_wrong": r["lvo_wrong"], "bad": r["bad"],
                                    "flags": r["flags"]}
                        for r in rows}}
    rule.save(Path(fine_dir) / ReviewRule.FILE, record)
    return rule.to_file_dict(record)


def fit_validation_rules(fine_model_dir, raw_dataset_dir, folds: dict, metadata_csv=None, predictor=None) -> dict:
    """Fit and save the component rule, the review flag and the LVO thresholds (module docstring); returns the
    record also written to ``lvo_fit.json``: {"thresholds", "postprocessing", "review", "n_cases", "ica_calibre",
    "folds", "cases", "counts_truth_to_call", "note"}.

    ``raw_dataset_dir``: the nnU-Net raw dataset (``imagesTr/<case>_0000`` CTA, ``_0001`` NCCT, ``metadata.csv``);
    ``folds``: {fold tag: [case ids]} with predictions under ``fold_<tag>/validation``
    (``model_folder.validation_cases``); ``predictor``: see :func:`load_validation_case`.
    """
    fine, raw = Path(fine_model_dir), Path(raw_dataset_dir)
    sites = metadata_sites(Path(metadata_csv) if metadata_csv else raw / "metadata.csv")
    loaded, used_folds = [], []
    for fold, fold_cases in folds.items():
        used_folds.append(f"fold_{fold}")
        for case in fold_cases:
            if case not in sites:
                raise ValueError(f"validation case {case} has no row in metadata.csv ({raw / 'metadata.csv'})")
            loaded.append(load_validation_case(fine / f"fold_{fold}" / "validation" / f"{case}.nii.gz", raw, case,
                                               predictor, fold))
    if not loaded:
        raise FileNotFoundError(f"no validation predictions under {fine}/fold_*/validation: train (or validate with "
                                f"nnUNetv2_train ... --val) the fine stage first")
    post, post_record = fit_component_rule_on(loaded, fine)
    selections = {c["case"]: _select(c, post) for c in loaded}  # once per case: the LVO and review fits share it
    cases = [(c["case"], selections[c["case"]]["kept"], true_call(sites[c["case"]])) for c in loaded]
    ica_refs = ica_reference_diameters(raw, sites)
    ica_floor = fit_ica_calibre(ica_refs.values())
    rule = fit_lvo_thresholds([(c, t) for _, c, t in cases], ica_diameter_mm=ica_floor)
    rule.save(fine / rule.FILE)
    review = fit_review_on(loaded, post, fine, rule, sites, selections)
    counts = {}
    for _, comps, truth in cases:
        call = lvo_call(comps, rule)["call"]
        counts[f"{truth} -> {call}"] = counts.get(f"{truth} -> {call}", 0) + 1
    info = {"thresholds": rule.to_dict(), "postprocessing": post_record,
            "review": None if review is None else {k: v for k, v in review.items() if k != "cases"},
            "n_cases": len(cases),
            "ica_calibre": {"reference_diameters_mm": ica_refs, "candidate_mm": ica_floor,
                            "kept": rule.min_ica_diameter_mm is not None,
                            "note": f"{ICA_CALIBRE_FRACTION:g} x the median mean diameter of the labelsTr ICA clots; "
                                    "kept unless it lowers the validation LVO scores"},
            "folds": used_folds, "cases": [c for c, _, _ in cases], "counts_truth_to_call": counts, "note": NOTE}
    write_json(fine / FIT_RECORD_FILE, info, indent=1)
    return info
