"""Per-case uncertainty and the review flag: exact values on small arrays, and the fit on validation cases."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nnunet_thrombus.calibration.artifact import CalibrationFileError
from nnunet_thrombus.calibration.model import load_artifact
from nnunet_thrombus.calibration.review import (ReviewRule, binary_entropy_bits, case_uncertainty, fit_review_rule,
                                                is_bad)


def test_binary_entropy_values():
    h = binary_entropy_bits([0.0, 0.5, 1.0, 0.25])
    assert h[:3].tolist() == [0.0, 1.0, 0.0]
    assert h[3] == pytest.approx(-(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)))   # 0.811278...


def test_case_uncertainty_clot_and_clot_free():
    p = np.zeros((1, 2, 4), np.float32)
    p[0, 0] = [0.5, 0.75, 0.9, 0.1]
    p[0, 1] = [0.3, 0.0, 0.0, 0.0]
    mask = p > 0.6
    u = case_uncertainty(p, mask, fold_std=np.full(p.shape, 0.2), fold_votes=np.array([[[2, 3, 3, 1], [1, 0, 0, 0]]]),
                         n_folds=3)
    h = binary_entropy_bits([0.75, 0.9])
    assert u["kind"] == "clot" and u["score"] == pytest.approx(h.mean())
    assert u["max_probability_in_brain"] == pytest.approx(0.5)       # outside the clot
    assert u["fold_std_in_clot"] == pytest.approx(0.2)
    assert u["fold_disagreement"] == pytest.approx(3 / 5)           # votes 2, 1, 1 of 5 voxels some fold calls
    free = case_uncertainty(p, np.zeros_like(mask), brain=np.ones_like(mask))
    assert free["kind"] == "clot-free" and free["mean_entropy_bits"] is None
    assert free["max_probability_in_brain"] == pytest.approx(0.9)
    assert free["score"] == pytest.approx(1.0)                       # a voxel at or above 0.5: entropy capped at 1
    low = case_uncertainty(np.full((2, 2, 2), 0.25, np.float32), np.zeros((2, 2, 2), bool))
    assert low["score"] == pytest.approx(float(binary_entropy_bits(0.25)))
    assert low["fold_disagreement"] is None
    with pytest.raises(ValueError, match="one shape"):
        case_uncertainty(p, mask[:, :1])


def _cases(bad_scores, good_scores, kind="clot", flags=()):
    return [{"uncertainty": {"score": s, "kind": kind}, "bad": b, "flags": list(flags)}
            for scores, b in ((bad_scores, True), (good_scores, False)) for s in scores]


def test_score_threshold_is_the_highest_that_reaches_the_target():
    def fit(target):
        return fit_review_rule(_cases([0.2, 0.4, 0.6, 0.8], [0.1]), target_sensitivity=target)[0].clot_score

    assert fit(0.75) == pytest.approx(0.4) and fit(1.0) == pytest.approx(0.2)   # 3 of 4, 4 of 4
    # no bad clot-free case: the base threshold stays
    assert fit_review_rule(_cases([0.5], [0.1]), base=ReviewRule(clot_free_score=0.33))[0].clot_free_score == 0.33


def test_fit_drops_a_case_flag_that_fires_on_good_cases():
    """Three good cases with two candidates (the component rule keeps false components beside true clots): a flag
    that always asks for review would cost 3 of 5 good cases and catch no bad one."""
    cases = _cases([0.7, 0.8], [0.1, 0.2]) + _cases([], [0.15, 0.25, 0.3], flags=("multiple_candidates",))
    rule, info = fit_review_rule(cases, target_sensitivity=1.0)
    # a tie keeps the flags that fire on no case; the one that costs good cases goes
    assert rule.case_flags == ("dense_candidate", "site_by_calibre", "small_call")
    assert rule.clot_score == pytest.approx(0.7)
    assert info["sensitivity"] == 1.0 and info["specificity"] == 1.0
    default = next(c for c in info["candidates"] if c["case_flags"] == ["multiple_candidates", "dense_candidate"])
    assert default["specificity"] == pytest.approx(2 / 5)
    assert rule.review(_u(0.2), ("multiple_candidates",))["review"] is False


def test_fit_keeps_a_case_flag_that_catches_what_the_score_misses():
    """A calcified clot whose probabilities are sure (score 0.05) but wrong: only the dense-candidate flag catches
    it, so the score threshold need not drop to 0.05 and flag every good case."""
    cases = _cases([0.7], [0.1, 0.2, 0.3]) + _cases([0.05], [], flags=("dense_candidate",))
    rule, info = fit_review_rule(cases, target_sensitivity=1.0)
    assert "dense_candidate" in rule.case_flags and rule.clot_score == pytest.approx(0.7)
    assert info["specificity"] == 1.0
    without = [c for c in info["candidates"] if "dense_candidate" not in c["case_flags"]]
    assert all(c["specificity"] == 0.0 for c in without)   # the score alone must go to 0.05


def test_case_flags_round_trip_and_old_files(tmp_path):
    rule = ReviewRule(clot_score=0.4, case_flags=("dense_candidate",))
    rule.save(tmp_path / "review_rule.json", {"n_cases": 3})
    assert ReviewRule.load(tmp_path / "review_rule.json") == rule
    old = {"rule": {"clot_score": 0.4, "clot_free_score": 0.9, "target_sensitivity": 0.9}}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert ReviewRule.load(tmp_path / "old.json").case_flags == ("multiple_candidates", "dense_candidate")
    with pytest.raises(ValueError, match="case_flags"):
        ReviewRule(case_flags=("made_up",))


def _u(score, kind="clot"):
    return {"score": score, "kind": kind}


def test_review_rule_and_fit(tmp_path):
    rule = ReviewRule(clot_score=0.4, clot_free_score=0.7)
    assert rule.review(_u(0.39))["review"] is False
    r = rule.review(_u(0.41), ("multiple_candidates",))
    assert r["review"] and len(r["reasons"]) == 2
    assert rule.review(_u(0.5, "clot-free"))["review"] is False
    assert ReviewRule().review(_u(0.1), ("dense_candidate",))["review"]
    cases = [{"uncertainty": _u(s), "bad": b} for s, b in ((0.1, False), (0.2, False), (0.3, True), (0.5, True),
                                                            (0.6, False))]
    cases += [{"uncertainty": _u(s, "clot-free"), "bad": b} for s, b in ((0.2, False), (0.8, True))]
    fitted, info = fit_review_rule(cases, target_sensitivity=1.0)
    assert fitted.clot_score == pytest.approx(0.3) and fitted.clot_free_score == pytest.approx(0.8)
    assert info["sensitivity"] == 1.0 and info["specificity"] == pytest.approx(3 / 4)   # 0.6 flagged though good
    (tmp_path / "review_rule.json").write_text(json.dumps({"rule": fitted.to_dict()}))
    loaded, source = load_artifact("review", [tmp_path])
    assert loaded == fitted and source.endswith("/review_rule.json")
    (tmp_path / "review_rule.json").write_text(json.dumps({"rule": {"clot_score": 7}}))
    with pytest.raises(CalibrationFileError, match="fit-lvo"):
        load_artifact("review", [tmp_path])
    assert load_artifact("review", [tmp_path / "nothing"]) == (ReviewRule(), "default")


def test_bad_case_definition():
    assert is_bad(0.59, True, True) and not is_bad(0.6, True, True)
    assert is_bad(0.0, True, False)                 # a miss
    assert is_bad(0.0, False, True) and not is_bad(1.0, False, False)
    assert is_bad(0.9, True, True, lvo_wrong=True)  # a good mask with the wrong LVO call


def test_fit_chooses_among_the_call_flags_too():
    """Two wrong LVO calls with sure probabilities (score 0.05): one rests on a few voxels, one on a site the
    calibre check changed. Only the call flags catch both without flagging the confident good cases."""
    cases = (_cases([0.7], [0.1, 0.2, 0.3]) + _cases([0.05], [], flags=("small_call",))
             + _cases([0.05], [], flags=("site_by_calibre",)) + _cases([], [0.1], flags=("multiple_candidates",)))
    rule, info = fit_review_rule(cases, target_sensitivity=1.0)
    assert set(rule.case_flags) == {"small_call", "site_by_calibre", "dense_candidate"}
    assert rule.clot_score == pytest.approx(0.7) and info["specificity"] == 1.0
    assert len(info["candidates"]) == 16 and "wrong LVO call" in info["bad_definition"]
    r = rule.review(_u(0.1), ("small_call",))
    assert r["review"] and "few voxels" in r["reasons"][0]
    assert ReviewRule().review(_u(0.1), ("small_call", "site_by_calibre"))["review"] is False  # unfitted: not used
