"""Fitting the component rule and the review flag from nnU-Net-style validation folders (masks, npz, raw images)
(calibration.validation; the predictor that stands in for missing probabilities is inference.validation_fit)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_thrombus.calibration.lvo import LVOThresholds
from nnunet_thrombus.calibration.validation import (fit_component_rule_on, fit_review_on, load_validation_case,
                                                    review_cases)


def _img(arr, path):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(img, str(path))


def _case(tmp_path, name, pred, ref, prob=None):
    """A 20 x 20 x 40 head: artery along x (CTA 300), clot at x 4-8 (NCCT 60, CTA 70), plaque at x 30-33
    (NCCT 180, CTA 350)."""
    shape = (20, 20, 40)
    cta, ncct = np.full(shape, 40, np.int16), np.full(shape, 35, np.int16)
    cta[9:12, 9:12, :] = 300
    cta[9:12, 9:12, 4:8], ncct[9:12, 9:12, 4:8] = 70, 60
    cta[12:14, 9:12, 30:33], ncct[12:14, 9:12, 30:33] = 350, 180
    raw, val = tmp_path / "raw", tmp_path / "fine" / "fold_0" / "validation"
    for d in (raw / "imagesTr", raw / "labelsTr", val):
        d.mkdir(parents=True, exist_ok=True)
    _img(cta, raw / "imagesTr" / f"{name}_0000.nii.gz")
    _img(ncct, raw / "imagesTr" / f"{name}_0001.nii.gz")
    _img(ref.astype(np.uint8), raw / "labelsTr" / f"{name}.nii.gz")
    _img(pred.astype(np.uint8), val / f"{name}.nii.gz")
    if prob is not None:  # nnU-Net's --npz: (C, Z, Y, X), background first
        np.savez(val / f"{name}.npz", probabilities=np.stack([1 - prob, prob]).astype(np.float32))
    return val / f"{name}.nii.gz", raw


def _masks():
    shape = (20, 20, 40)
    clot, plaque = np.zeros(shape, bool), np.zeros(shape, bool)
    clot[9:12, 9:12, 4:8] = True
    plaque[12:14, 9:12, 30:33] = True
    return clot, plaque


def test_load_and_fit_with_probabilities(tmp_path):
    clot, plaque = _masks()
    prob_a = np.where(clot, 0.95, np.where(plaque, 0.8, 0.0)).astype(np.float32)
    prob_b = np.where(plaque, 0.55, 0.0).astype(np.float32)          # clot-free head, the plaque called
    a = load_validation_case(*_case(tmp_path, "A", clot | plaque, clot, prob_a), "A")
    b = load_validation_case(*_case(tmp_path, "B", plaque, np.zeros_like(clot), prob_b), "B")
    assert a["probability"].shape == clot.shape and float(a["probability"].max()) == pytest.approx(0.95)
    post, record = fit_component_rule_on([a, b], tmp_path / "fine")
    assert record["validation_mean_dice"]["evidence"] == pytest.approx(1.0)
    fit_review_on([a, b], post, tmp_path / "fine")
    review = json.loads((tmp_path / "fine" / "review_rule.json").read_text())
    # after post-processing: A keeps the clot (entropy of 0.95), B is clot-free with the dropped plaque at 0.55
    h95 = -(0.95 * np.log2(0.95) + 0.05 * np.log2(0.05))
    assert review["cases"]["A"]["score"] == pytest.approx(h95, rel=1e-5) and review["cases"]["A"]["bad"] is False
    assert review["cases"]["B"]["kind"] == "clot-free" and review["cases"]["B"]["score"] == pytest.approx(1.0)
    assert review["n_bad"] == 0 and review["rule"]["clot_score"] == 0.5      # nothing bad: defaults kept
    assert json.loads((tmp_path / "fine" / "postprocessing.json").read_text())["n_with_probabilities"] == 2


def test_shape_mismatch_and_missing_reference(tmp_path):
    clot, plaque = _masks()
    pred_file, raw = _case(tmp_path, "A", clot, clot, np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="validation case A: probabilities"):
        load_validation_case(pred_file, raw, "A")
    (raw / "labelsTr" / "A.nii.gz").unlink()
    pred_file.with_name("A.npz").unlink()
    case = load_validation_case(pred_file, raw, "A")
    assert case["ref"] is None and case["probability"] is None
    post, record = fit_component_rule_on([case], tmp_path / "fine")
    assert record is None and fit_review_on([case], post, tmp_path / "fine") is None
    assert not (tmp_path / "fine" / "postprocessing.json").exists()


def test_a_wrong_lvo_call_is_a_bad_case_and_the_call_flags_reach_the_fit(tmp_path):
    """A well-segmented clot (Dice 1) of 36 mm3 in the brain box: with the site ``M2`` in metadata the call (by
    site from the mask) may be right or wrong; a case is bad exactly when the LVO call disagrees with metadata."""
    clot, _ = _masks()
    prob = np.where(clot, 0.95, 0.0).astype(np.float32)
    a = load_validation_case(*_case(tmp_path, "A", clot, clot, prob), "A")
    post, _ = fit_component_rule_on([a], tmp_path / "fine")
    rule = LVOThresholds(min_volume_mm3=5.0)
    (row,) = review_cases([a], post, rule, sites={"A": "M2"})
    called_lvo = row["lvo_wrong"]                 # wrong against M2 exactly when the mask's call is LVO
    (as_lvo,) = review_cases([a], post, rule, sites={"A": "M1"})
    assert as_lvo["lvo_wrong"] is (not called_lvo) and row["dice"] == pytest.approx(1.0)
    assert {row["bad"], as_lvo["bad"]} == {True, False}          # Dice 1: only the LVO call makes a case bad
    (no_sites,) = review_cases([a], post, rule)
    assert no_sites["lvo_wrong"] is False and no_sites["bad"] is False
    (small,) = review_cases([a], post, LVOThresholds(min_volume_mm3=20.0), sites={"A": "M2"})
    assert "small_call" in small["flags"]                        # 36 mm3 < 2 x 20 mm3
    assert "small_call" not in row["flags"]                       # 36 mm3 >= 10 mm3


def test_validation_predictor_only_beside_a_coarse_stage(tmp_path):
    from nnunet_thrombus.inference.validation_fit import ValidationPredictor

    fine = tmp_path / "ThrombusCascadeTrainer__ThrombusPlans__3d_cascade_fullres"
    fine.mkdir()
    assert ValidationPredictor.beside(fine) is None                       # no 3d_lowres sibling
    (tmp_path / "ThrombusCascadeTrainer__ThrombusPlans__3d_lowres").mkdir()
    vp = ValidationPredictor.beside(fine)
    assert vp is not None and vp.coarse_dir.endswith("__3d_lowres") and vp.use_mirroring is False
    plain = tmp_path / "nnUNetTrainer__ThrombusPlans__3d_fullres"
    plain.mkdir()
    assert ValidationPredictor.beside(plain) is None                      # single-stage baseline: masks only
