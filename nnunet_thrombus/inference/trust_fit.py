"""Fit the component keep/drop rule and the review flag on validation folds, and store both with the model.

Input: nnU-Net's validation predictions of the fine stage, ``fold_k/validation/<case>.nii.gz`` (each case predicted by
the one fold that did not train on it; never the test set), with the case's images from the raw dataset's
``imagesTr`` (``_0000`` CTA, ``_0001`` NCCT; brain = CTA above -1000 HU, the skull-stripped value) and its reference
from ``labelsTr``. Where nnU-Net also saved the probabilities (``nnUNetv2_train ... --val --npz`` writes
``<case>.npz``), the probability tests of the component rule and the review flag are fitted too. Without them, for a
cascade (a ``3d_lowres`` stage beside the fine one), :class:`ValidationPredictor` predicts each validation case with
its own fold's cascade (coarse and fine stage of that fold only, as ``predict`` runs them, mirroring off), and that
probability and its mask (p > 0.5) stand in for nnU-Net's. Otherwise the review flag keeps its default thresholds
and the report says so (``review.source`` "default").

Writes, in the fine model folder: ``postprocessing.json`` (:mod:`~nnunet_thrombus.inference.postprocessing`) and,
with probabilities, ``review_rule.json`` (:mod:`~nnunet_thrombus.inference.uncertainty`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

NOTE = "fitted on nnU-Net validation predictions only (never on the test set)"


def validation_probability(pred_file: Path) -> np.ndarray | None:
    """Thrombus probability (Z, Y, X) from nnU-Net's ``<case>.npz`` beside a validation mask (``probabilities``,
    (C, Z, Y, X), the foreground classes summed); None when there is no such file."""
    npz = pred_file.with_name(pred_file.name[: -len(".nii.gz")] + ".npz")
    if not npz.is_file():
        return None
    with np.load(npz) as f:
        probs = np.asarray(f["probabilities"], dtype=np.float32)
    return probs[1:].sum(axis=0)


class ValidationPredictor:
    """Each validation case predicted by the cascade of the fold that held it out (``predict``'s code path), one
    ``ThrombusCascadePredictor`` per fold, loaded on first use. ``coarse_dir`` / ``fine_dir``: the stage folders."""

    def __init__(self, coarse_dir, fine_dir, device: str = "cpu", use_mirroring: bool = False):
        self.coarse_dir, self.fine_dir = str(coarse_dir), str(fine_dir)
        self.device, self.use_mirroring = device, use_mirroring
        self._fold, self._predictor = None, None

    @classmethod
    def beside(cls, fine_dir, **kwargs) -> "ValidationPredictor | None":
        """For a ``3d_cascade_fullres`` folder with its ``3d_lowres`` sibling; None otherwise."""
        from nnunet_thrombus.model_folder import COARSE, FINE

        fine = Path(fine_dir)
        if not fine.name.endswith(FINE):
            return None
        coarse = fine.with_name(fine.name[: -len(FINE)] + COARSE)
        return cls(coarse, fine, **kwargs) if coarse.is_dir() else None

    def probability(self, fold: str, images: np.ndarray, spacing) -> np.ndarray:
        """Thrombus probability (Z, Y, X) of ``images`` (C, Z, Y, X: CTA, NCCT) by fold ``fold``'s cascade."""
        if self._fold != fold:
            from nnunet_thrombus.inference.cascade_predictor import ThrombusCascadePredictor
            from nnunet_thrombus.model_folder import resolve_roi_threshold

            threshold, _ = resolve_roi_threshold(self.fine_dir)
            self._predictor = ThrombusCascadePredictor(self.coarse_dir, self.fine_dir, folds=(int(fold),),
                                                       device=self.device, use_mirroring=self.use_mirroring,
                                                       roi_threshold=threshold)
            self._fold = fold
        return np.asarray(self._predictor.predict(np.asarray(images, np.float32), spacing).probability, np.float32)


def load_validation_case(pred_file: Path, raw: Path, case: str, predictor: ValidationPredictor | None = None,
                         fold: str | None = None) -> dict:
    """One validation case as the dict ``choose_postprocessing`` takes (``ref`` None when ``labelsTr`` lacks it).
    Without nnU-Net's ``<case>.npz``, a ``predictor`` (with the case's ``fold``) supplies probability and mask."""
    import SimpleITK as sitk

    ref = raw / "labelsTr" / f"{case}.nii.gz"
    label = sitk.ReadImage(str(pred_file))
    cta_img = sitk.ReadImage(str(raw / "imagesTr" / f"{case}_0000.nii.gz"))
    cta = sitk.GetArrayFromImage(cta_img).astype(np.float32)
    pred = sitk.GetArrayFromImage(label) > 0
    ncct = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "imagesTr" / f"{case}_0001.nii.gz"))).astype(np.float32)
    prob = validation_probability(pred_file)
    if prob is None and predictor is not None:
        prob = predictor.probability(fold, np.stack([cta, ncct]), cta_img.GetSpacing()[::-1])
        pred = prob > 0.5
    if prob is not None and prob.shape != pred.shape:
        raise ValueError(f"validation case {case}: probabilities {prob.shape} and mask {pred.shape} differ in shape")
    return {"case": case, "pred": pred,
            "ref": sitk.GetArrayFromImage(sitk.ReadImage(str(ref))) > 0 if ref.is_file() else None,
            "spacing": label.GetSpacing()[::-1], "origin": label.GetOrigin(), "direction": label.GetDirection(),
            "cta": cta, "brain": cta > -1000, "ncct": ncct, "probability": prob}


def review_cases(cases, postprocessing) -> list[dict]:
    """Per validation case with a probability map: its uncertainty after ``postprocessing`` and whether it is a bad
    case (Dice < 0.6, a false-positive call, or a miss), for ``fit_review_rule``."""
    from nnunet_thrombus.evaluation.surface_metrics import dice
    from nnunet_thrombus.inference.uncertainty import case_uncertainty, is_bad

    out = []
    for c in cases:
        if c.get("probability") is None:
            continue
        images = {k: c[k] for k in ("probability", "ncct", "cta", "brain", "origin", "direction")}
        sel = postprocessing.select(c["pred"], c["spacing"], **images)
        unc = case_uncertainty(c["probability"], sel["mask"], c["brain"])
        d = dice(sel["mask"], c["ref"])
        out.append({"case": c["case"], "uncertainty": unc, "flags": sel["flags"], "dice": d,
                    "bad": is_bad(d, bool(c["ref"].any()), bool(sel["mask"].any()))})
    return out


def fit_trust(cases, fine_dir) -> dict:
    """Fit on loaded validation ``cases`` (``load_validation_case`` dicts), write the rule files into ``fine_dir``
    and return {"postprocessing": {...}, "review": {...} or None}."""
    from nnunet_thrombus.inference.postprocessing import FILE as PP_FILE
    from nnunet_thrombus.inference.postprocessing import choose_postprocessing
    from nnunet_thrombus.inference.uncertainty import FILE as REVIEW_FILE
    from nnunet_thrombus.inference.uncertainty import fit_review_rule

    cases = [c for c in cases if c.get("ref") is not None]
    if not cases:
        return {"postprocessing": None, "review": None}
    fine = Path(fine_dir)
    chosen, info = choose_postprocessing(cases)
    chosen.save(fine / PP_FILE, {**info, "n_with_probabilities": sum(c["probability"] is not None for c in cases),
                                 "note": NOTE})
    result = {"postprocessing": {**chosen.to_dict(), **info}, "review": None}
    rows = review_cases(cases, chosen)
    if rows:
        from nnunet_thrombus.evaluation.atomic_io import write_json

        rule, rinfo = fit_review_rule(rows)
        payload = {"rule": rule.to_dict(), **rinfo, "note": NOTE,
                   "cases": {r["case"]: {"score": r["uncertainty"]["score"], "kind": r["uncertainty"]["kind"],
                                         "dice": r["dice"], "bad": r["bad"]} for r in rows}}
        write_json(fine / REVIEW_FILE, payload)
        result["review"] = payload
    return result
