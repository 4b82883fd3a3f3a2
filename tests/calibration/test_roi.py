"""Choosing the ROI threshold: clot coverage of the grown candidate region, and the highest safe threshold."""
from __future__ import annotations

import json

import numpy as np
import pytest

from nnunet_thrombus.calibration.artifact import CalibrationFileError
from nnunet_thrombus.calibration.roi import ROIThreshold, choose_threshold, clot_coverage, load_roi_threshold

FILE = ROIThreshold.FILE


def test_clot_coverage_counts_reference_voxels_inside_the_grown_region():
    prob = np.zeros((10, 10, 30), np.float32)
    prob[5, 5, 10] = 0.6                   # one candidate voxel
    ref = np.zeros(prob.shape, bool)
    ref[5, 5, 8:18] = True                 # a 10-voxel clot along x
    # grown by 3 along x: x 7..13 -> clot voxels 8..13 inside, 6 of 10
    assert clot_coverage(prob, ref, 0.5, (1, 1, 3)) == pytest.approx(0.6)
    assert clot_coverage(prob, ref, 0.5, (1, 1, 8)) == 1.0       # x 2..18 holds the whole clot
    assert clot_coverage(prob, ref, 0.7, (1, 1, 8)) == 0.0       # above the candidate: nothing
    assert clot_coverage(prob, np.zeros_like(ref), 0.7, (1, 1, 1)) == 1.0   # no clot: nothing to lose


def _case(coverage, windows):
    return {t: {"coverage": c, "windows": w} for t, c, w in zip((0.1, 0.3, 0.5), coverage, windows)}


def test_choose_the_cheapest_threshold_keeping_every_clot():
    per_case = {"a": _case((1.0, 1.0, 0.8), ((40, 100), (20, 100), (8, 100))),
                "b": _case((1.0, 1.0, 1.0), ((60, 100), None, None)),        # empty region above 0.1: fallback
                "c": _case((1.0, 1.0, 1.0), ((50, 100), (30, 100), (10, 100)))}
    got = choose_threshold(per_case, (0.1, 0.3, 0.5))
    assert got["threshold"] == 0.3                                    # 0.5 cuts case a's clot (0.8 inside)
    assert got["table"][0.5]["worst_coverage"] == 0.8
    # shares at 0.3: 0.2, 1.0 (the fallback runs the whole image), 0.3 -> median 0.3
    assert got["table"][0.3] == {"worst_coverage": 1.0, "median_window_share": 0.3, "fallbacks": 1}
    assert got["table"][0.1]["median_window_share"] == 0.5
    per_case["a"][0.1]["coverage"] = 0.9                              # no threshold is safe
    assert choose_threshold(per_case, (0.1,))["threshold"] is None


def test_a_threshold_that_only_falls_back_is_not_chosen():
    # a coarse stage that localises nothing: above 0.2 every region is empty, so every case runs the whole image
    per_case = {c: _case((1.0, 1.0, 1.0), ((60, 60), (34, 60), None)) for c in "abc"}
    got = choose_threshold(per_case, (0.1, 0.3, 0.5))
    assert got["threshold"] == 0.3 and got["table"][0.5] == {"worst_coverage": 1.0, "median_window_share": 1.0,
                                                            "fallbacks": 3}
    same = {c: _case((1.0, 1.0, 1.0), ((30, 60), (30, 60), (30, 60))) for c in "ab"}
    assert choose_threshold(same, (0.1, 0.3, 0.5))["threshold"] == 0.5    # a tie: the highest


def test_load_threshold_checks_the_file(tmp_path):
    assert load_roi_threshold(tmp_path) is None
    (tmp_path / FILE).write_text(json.dumps({"threshold": 0.3}))
    assert load_roi_threshold(tmp_path).threshold == 0.3
    for bad in ({"threshold": 1.5}, {"t": 0.3}, {"threshold": "high"}):
        (tmp_path / FILE).write_text(json.dumps(bad))
        with pytest.raises(CalibrationFileError, match=FILE):
            load_roi_threshold(tmp_path)


def test_whole_image_required_when_no_threshold_kept_every_validation_clot(tmp_path):
    assert load_roi_threshold(tmp_path) is None                      # no file: the ROI rule as usual
    (tmp_path / FILE).write_text(json.dumps({"threshold": 0.1, "whole_image": True}))
    assert load_roi_threshold(tmp_path).whole_image is True
    (tmp_path / FILE).write_text(json.dumps({"threshold": 0.3}))   # files from before the flag
    assert load_roi_threshold(tmp_path).whole_image is False
