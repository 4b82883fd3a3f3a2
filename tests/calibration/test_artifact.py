"""The one serialization path of fitted rules: round trips, key checks, schema version, and files in the format
that models trained before this package wrote (written here as literal JSON, not by the code under test)."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from nnunet_thrombus.calibration.artifact import SCHEMA_VERSION, CalibrationFileError, FittedArtifact
from nnunet_thrombus.calibration.components import ComponentRule
from nnunet_thrombus.calibration.lvo import LVOThresholds
from nnunet_thrombus.calibration.model import FILES, ModelCalibration, load_model_calibration
from nnunet_thrombus.calibration.postprocessing import Postprocessing
from nnunet_thrombus.calibration.review import ReviewRule
from nnunet_thrombus.calibration.roi import ROIThreshold

# --------------------------------------------------------------------- files as earlier versions wrote them
OLD_POSTPROCESSING = {
    "rule": "evidence",
    "component_rule": {"min_volume_mm3": 3.5, "min_mean_probability": 0.4, "calcification_hu": 95.0,
                       "min_ncct_hu": 0.0, "deficit_ratio": 0.8, "max_cta_hu": 150.0, "require_artery": True,
                       "artery_radius_mm": 2.0, "min_enhancement_hu": -10.0},
    "fit": {"n_candidates": 96}, "validation_mean_dice": {"none": 0.61, "evidence": 0.7}, "n_cases": 12,
    "n_with_probabilities": 12, "note": "fitted on nnU-Net validation predictions only (never on the test set)"}
#: the size rule of the first versions: loads as the default evidence rule
OLD_LARGEST = {"rule": "largest_min_volume", "min_volume_mm3": 6.0, "validation_mean_dice": {"none": 0.5},
               "n_cases": 4, "note": "chosen on nnU-Net validation predictions only (never on the test set)"}
OLD_LVO = {"min_volume_mm3": 7.25, "lvo_sites": ["ICA", "M1"], "min_lvo_diameter_mm": None,
           "min_ica_diameter_mm": 3.1, "carotid_t_lr": 0.23}
#: before the ICA calibre check existed: two keys fewer
OLDER_LVO = {"min_volume_mm3": 4.0, "lvo_sites": ["ICA", "M1"], "min_lvo_diameter_mm": 2.5}
OLD_ROI = {"threshold": 0.3, "default_kept": False, "n_cases": 6, "folds": ["0"], "whole_image": False,
           "rule": "among the thresholds at which every validation clot lies wholly inside ...",
           "table": {"0.3": {"worst_coverage": 1.0, "median_window_share": 0.4, "fallbacks": 0}},
           "cases": {"SYN_0001": {"0.3": {"coverage": 1.0, "windows": [4, 10]}}}}
OLD_REVIEW = {"rule": {"clot_score": 0.42, "clot_free_score": 0.8, "target_sensitivity": 0.9}, "n_cases": 6,
              "n_bad": 2, "sensitivity": 1.0, "specificity": 0.75, "bad_definition": "Dice < 0.6 ...",
              "note": "fitted on nnU-Net validation predictions only", "cases": {"A": {"score": 0.5}}}


def _write(folder, name, content):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(content, indent=1))


def test_old_files_load_with_their_values(tmp_path):
    fine = tmp_path / "T__P__3d_cascade_fullres"
    _write(fine, "postprocessing.json", OLD_POSTPROCESSING)
    _write(fine, "lvo_thresholds.json", OLD_LVO)
    _write(fine, "roi_threshold.json", OLD_ROI)
    _write(fine, "review_rule.json", OLD_REVIEW)
    cal = load_model_calibration(fine)
    assert cal.postprocessing.rule == "evidence"
    assert cal.postprocessing.components.min_volume_mm3 == 3.5
    assert cal.postprocessing.components.min_mean_probability == 0.4
    assert cal.postprocessing.components.min_enhancement_hu == -10.0
    assert cal.lvo.min_volume_mm3 == 7.25 and cal.lvo.min_ica_diameter_mm == 3.1
    assert cal.lvo.lvo_sites == ("ICA", "M1")                  # JSON list back to the tuple the rule compares
    assert (cal.roi.threshold, cal.roi.whole_image) == (0.3, False)
    assert (cal.review.clot_score, cal.review.clot_free_score) == (0.42, 0.8)
    assert cal.sources == {name: f"{fine.name}/{FILES[name]}" for name in FILES}
    assert cal.roi_fitted


def test_files_of_the_first_versions_load(tmp_path):
    _write(tmp_path, "postprocessing.json", OLD_LARGEST)
    _write(tmp_path, "lvo_thresholds.json", OLDER_LVO)
    cal = load_model_calibration(tmp_path)
    assert cal.postprocessing == Postprocessing()              # the size rule is what the evidence rule replaced
    assert cal.lvo.min_lvo_diameter_mm == 2.5 and cal.lvo.min_ica_diameter_mm is None


def test_no_files_means_defaults_with_source_default(tmp_path):
    cal = load_model_calibration(tmp_path)
    assert cal == ModelCalibration()
    assert set(cal.sources.values()) == {"default"} and not cal.roi_fitted
    assert cal.roi.threshold == 0.1 and cal.lvo.min_volume_mm3 == 5.0


def test_lvo_thresholds_in_the_model_root_are_found(tmp_path):
    fine = tmp_path / "fine"
    fine.mkdir()
    _write(tmp_path, "lvo_thresholds.json", {"min_volume_mm3": 9.0})
    cal = load_model_calibration(fine, root=tmp_path)
    assert cal.lvo.min_volume_mm3 == 9.0 and cal.sources["lvo"] == f"{tmp_path.name}/lvo_thresholds.json"


@pytest.mark.parametrize("rule, record", [
    (Postprocessing("evidence", ComponentRule(min_volume_mm3=2.0, min_enhancement_hu=0.0)),
     {"n_cases": 3, "note": "x"}),
    (Postprocessing("none"), {}),
    (LVOThresholds(min_volume_mm3=3.0, min_lvo_diameter_mm=2.2), {}),
    (ROIThreshold(0.2, whole_image=True), {"n_cases": 5, "table": {"0.2": {}}}),
    (ReviewRule(clot_score=0.3, clot_free_score=0.7), {"n_cases": 2, "cases": {}}),
])
def test_round_trip_through_the_file(tmp_path, rule, record):
    path = rule.save(tmp_path / rule.FILE, record)
    stored = json.loads(path.read_text())
    assert stored["schema_version"] == SCHEMA_VERSION
    assert type(rule).load(path) == rule
    assert type(rule).load_record(path) == record


def test_file_layout_is_the_old_one(tmp_path):
    """New files keep the keys old readers and the docs know: nested rule under 'component_rule' / 'rule'."""
    pp = json.loads(Postprocessing().save(tmp_path / "p.json").read_text())
    assert set(pp) == {"rule", "component_rule", "schema_version"}
    assert pp["component_rule"]["min_volume_mm3"] == 0.0
    review = json.loads(ReviewRule().save(tmp_path / "r.json").read_text())
    assert set(review) == {"rule", "schema_version"} and review["rule"]["clot_score"] == 0.5
    lvo = json.loads(LVOThresholds().save(tmp_path / "l.json").read_text())
    assert lvo["lvo_sites"] == ["ICA", "M1"] and lvo["min_volume_mm3"] == 5.0


@pytest.mark.parametrize("cls, content, match", [
    (LVOThresholds, {"min_volume_mm3": 5.0, "min_volme_mm3": 3.0}, "min_volme_mm3"),        # a typo
    (Postprocessing, {"rule": "evidence", "component_rule": {"min_volume": 1.0}}, "min_volume"),
    (Postprocessing, {"rule": "evidence", "unexpected": 1}, "unexpected"),
    (ROIThreshold, {"threshold": 1.5}, "not a probability"),
    (ROIThreshold, {"t": 0.3}, "'t'"),
    (ReviewRule, {"clot_score": 0.5}, "no 'rule' object"),
    (ReviewRule, {"rule": {"clot_score": 7.0}}, "clot_score must be in"),
    (LVOThresholds, {"min_volume_mm3": 5.0, "schema_version": SCHEMA_VERSION + 1}, "newer than this code"),
    (Postprocessing, {"rule": "biggest"}, "must be one of"),
])
def test_bad_files_fail_naming_the_file_and_the_key(tmp_path, cls, content, match):
    path = tmp_path / cls.FILE
    path.write_text(json.dumps(content))
    with pytest.raises(CalibrationFileError, match=match) as info:
        cls.load(path)
    assert str(path) in str(info.value)


def test_bad_file_in_a_model_names_the_command_that_rewrites_it(tmp_path):
    _write(tmp_path, "roi_threshold.json", {"threshold": 0.0})
    with pytest.raises(CalibrationFileError, match="fit-roi"):
        load_model_calibration(tmp_path)


def test_record_may_not_overwrite_the_rule(tmp_path):
    with pytest.raises(ValueError, match="threshold"):
        ROIThreshold(0.2).save(tmp_path / "x.json", {"threshold": 0.9})


def test_mixin_serialises_any_frozen_dataclass_with_a_nested_rule(tmp_path):
    @dataclass(frozen=True)
    class Inner(FittedArtifact):
        a: float = 1.0

    @dataclass(frozen=True)
    class Outer(FittedArtifact):
        FILE = "outer.json"
        NEST = "body"
        inner: Inner = Inner()
        names: tuple = ("x", "y")

    rule = Outer(Inner(2.5), ("p",))
    assert rule.to_dict() == {"inner": {"a": 2.5}, "names": ["p"]}
    back = Outer.load(rule.save(tmp_path / "outer.json", {"n": 1}))
    assert back == rule and isinstance(back.inner, Inner) and back.names == ("p",)
