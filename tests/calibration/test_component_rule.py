"""Component keep/drop by evidence: exact features on hand-made volumes, the rule's reasons, and its fit."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from nnunet_thrombus.calibration.components import (ComponentRule, downstream_ratio, fit_component_rule,
                                                           score_rule, select_components, vessel_distance_mm)


def test_vessel_distance_is_the_gap_to_the_nearest_bright_voxel():
    comp = np.zeros((9, 9, 12), bool)
    comp[4, 4, 4] = True
    cta = np.full(comp.shape, 40.0)
    cta[4, 4, 7] = 300.0                       # 3 voxels away along x
    assert vessel_distance_mm(comp, cta, (1.0, 1.0, 1.0)) == pytest.approx(3.0)
    assert vessel_distance_mm(comp, cta, (1.0, 1.0, 0.5)) == pytest.approx(1.5)
    assert vessel_distance_mm(comp, cta, (1.0, 1.0, 1.0), search_mm=2.0) is None
    cta[4, 4, 7] = 149.0                       # below the lumen threshold: no vessel
    assert vessel_distance_mm(comp, cta, (1.0, 1.0, 1.0)) is None


def test_downstream_ratio_compares_with_the_mirrored_side():
    comp = np.zeros((5, 5, 11), bool)
    comp[2, 2, 2] = True
    cta = np.full(comp.shape, 40.0)
    cta[2, 2, 0] = 250.0                       # 100 HU above 150 on the component's side
    cta[2, 2, 10] = 350.0                      # its mirror (midline x = 5): 200 HU above 150
    ratio = downstream_ratio(comp, cta, None, (1, 1, 1), (1, 0, 0, 0, 1, 0, 0, 0, 1), radius_mm=3.0, exclude_mm=0.5)
    assert ratio == pytest.approx(0.5)
    # an oblique grid (x index not left-right) gives no mirror comparison
    assert downstream_ratio(comp, cta, None, (1, 1, 1), (0, 1, 0, 1, 0, 0, 0, 0, 1)) is None
    cta[2, 2, 10] = 40.0                       # nothing contralateral: undefined, not infinite
    assert downstream_ratio(comp, cta, None, (1, 1, 1), (1, 0, 0, 0, 1, 0, 0, 0, 1), radius_mm=3.0,
                            exclude_mm=0.5) is None


def _scene():
    """40 x 40 x 40 at 1 mm: an artery along x (z=10, y=10, CTA 300 HU), a clot in it, a calcified plaque on its
    wall, and a blob in the parenchyma far from any vessel."""
    shape = (40, 40, 40)
    cta, ncct = np.full(shape, 40.0), np.full(shape, 35.0)
    cta[9:12, 9:12, :] = 300.0
    mask = np.zeros(shape, np.uint8)
    mask[9:12, 9:12, 6:10] = 1                 # clot: 36 voxels, filling defect (CTA 70), NCCT 60
    cta[9:12, 9:12, 6:10], ncct[9:12, 9:12, 6:10] = 70.0, 60.0
    mask[12:14, 9:12, 26:29] = 1               # plaque on the wall: 18 voxels, NCCT 200, CTA 350
    cta[12:14, 9:12, 26:29], ncct[12:14, 9:12, 26:29] = 350.0, 200.0
    mask[28:31, 28:31, 20:22] = 1              # parenchyma: 18 voxels, NCCT 60, CTA 70, 17 mm from the artery
    cta[28:31, 28:31, 20:22], ncct[28:31, 28:31, 20:22] = 70.0, 60.0
    return mask, ncct, cta


def test_select_keeps_the_clot_and_drops_calcium_and_off_artery_blobs_with_reasons():
    mask, ncct, cta = _scene()
    prob = np.where(mask > 0, 0.9, 0.0)
    out = select_components(mask, (1, 1, 1), probability=prob, ncct=ncct, cta=cta, reference=mask * 0 + (
        np.pad(np.ones((3, 3, 4)), ((9, 28), (9, 28), (6, 30))) > 0))
    assert [c["volume_mm3"] for c in out["kept"]] == [36.0]
    kept = out["kept"][0]
    assert kept["index"] == 1 and kept["on_artery"] is True and kept["overlaps_reference"] is True
    assert kept["mean_probability"] == pytest.approx(0.9) and kept["reason"].startswith("thrombus: 36.0 mm3")
    assert len(out["dropped"]) == 2 and all(c["index"] is None and not c["kept"] for c in out["dropped"])
    drops = sorted(c["reason"] for c in out["dropped"])
    assert drops[0].startswith("calcification, not thrombus: NCCT mean 200 HU >= 90 HU")
    assert drops[1].startswith("off the arteries")
    assert int(out["mask"].sum()) == 36 and out["flags"] == []
    assert sorted(c["candidate"] for c in out["kept"] + out["dropped"]) == [1, 2, 3]


def test_two_plausible_clots_are_both_kept_and_the_case_flagged():
    mask, ncct, cta = _scene()
    mask[12:14, 9:12, 26:29] = 0               # remove the plaque; add a second clot further along the artery
    mask[28:31, 28:31, 20:22] = 0
    mask[9:12, 9:12, 30:35] = 1
    cta[9:12, 9:12, 30:35], ncct[9:12, 9:12, 30:35] = 70.0, 60.0
    out = select_components(mask, (1, 1, 1), ncct=ncct, cta=cta)
    assert [c["volume_mm3"] for c in out["kept"]] == [45.0, 36.0]
    assert out["flags"] == ["multiple_candidates"] and int(out["mask"].sum()) == 81


def test_rule_thresholds_in_order():
    base = {"volume_mm3": 20.0, "mean_probability": 0.7, "ncct_mean_hu": 60.0, "cta_mean_hu": 80.0,
            "on_artery": True, "downstream_ratio": 1.0}
    rule = ComponentRule(min_volume_mm3=25.0, min_mean_probability=0.8)
    assert rule.decide(base)[1] == "smaller than 25 mm3 (20.0 mm3)"
    assert ComponentRule(min_mean_probability=0.8).decide(base)[1] == "mean probability 0.70 < 0.8"
    dense = dict(base, ncct_mean_hu=105.0)
    assert not ComponentRule().decide(dense)[0]
    keep, reason, flags = ComponentRule().decide(dict(dense, downstream_ratio=0.5))   # occlusion evidence wins
    assert keep and flags == ["dense"] and "review" in reason
    assert ComponentRule().decide(dict(base, cta_mean_hu=180.0))[1].startswith("contrast-filled on CTA")
    assert ComponentRule().decide(dict(base, on_artery=None))[0]          # not measured: not held against it
    assert ComponentRule(require_artery=False).decide(dict(base, on_artery=False))[0]
    faint = dict(base, ncct_mean_hu=25.0)
    assert ComponentRule().decide(faint)[0]                                # floor off by default
    assert ComponentRule(min_ncct_hu=30.0).decide(faint)[1] == "hypodense on NCCT, not thrombus: NCCT mean 25 HU < 30 HU"
    assert ComponentRule(min_ncct_hu=30.0).decide(dict(base, ncct_mean_hu=31.0))[0]
    with pytest.raises(ValueError, match="min_ncct_hu"):
        ComponentRule(min_ncct_hu=-1.0)
    with pytest.raises(ValueError, match="min_mean_probability"):
        ComponentRule(min_mean_probability=1.5)


def _c(vol, hu, true, cta=80.0, artery=True, p=None):
    return {"volume_mm3": vol, "ncct_mean_hu": hu, "cta_mean_hu": cta, "on_artery": artery, "downstream_ratio": 1.0,
            "mean_probability": p, "overlaps_reference": true}


def test_fit_never_drops_a_validation_clot_and_prefers_physics_defaults():
    cases = [[_c(40, 60, True), _c(15, 120, False)], [_c(30, 55, True)], [_c(8, 50, False, artery=False)]]
    rule, info = fit_component_rule(cases)
    assert rule == ComponentRule()                                    # defaults already perfect: kept
    assert info["score"] == {"true_dropped": 0, "false_kept": 0, "wrong_presence": 0}
    # a hyperdense true clot at 95 HU: the fit raises the calcium threshold rather than drop it
    cases.append([_c(25, 95, True), _c(12, 130, False)])
    rule, info = fit_component_rule(cases)
    assert rule.calcification_hu == 100.0 and info["score"]["true_dropped"] == 0
    assert info["default_score"]["true_dropped"] == 1
    assert score_rule(ComponentRule(), cases) == (1, 0, 1)   # that case then reads clot-free


def test_fit_chooses_the_hypodense_floor_only_when_no_validation_clot_is_below_it():
    cases = [[_c(20, 45, True, p=0.9), _c(10, 25, False, p=0.9)], [_c(15, 40, True, p=0.9)], [_c(12, 27, False, p=0.9)]]
    rule, info = fit_component_rule(cases)
    assert rule.min_ncct_hu == 30.0 and info["score"] == {"true_dropped": 0, "false_kept": 0, "wrong_presence": 0}
    assert info["default_score"]["false_kept"] == 2
    # a true clot at 28 HU (partial volume with CSF): the floor would drop it, so the fit leaves it off
    cases.append([_c(9, 28, True, p=0.9)])
    rule, info = fit_component_rule(cases)
    assert rule.min_ncct_hu == 0.0 and info["score"]["true_dropped"] == 0 and info["score"]["false_kept"] == 2


def test_fitted_min_volume_is_capped_so_small_clots_survive():
    cases = [[_c(3, 60, False)], [_c(60, 60, True)], [_c(4, 60, False)], [_c(50, 60, True)]]
    rule, info = fit_component_rule(cases)
    # candidates 0 and 3.5 (midpoints 27 and 55 lie above the 10 mm3 cap): 3.5 drops the 3 mm3 speck only
    assert rule.min_volume_mm3 == pytest.approx(3.5)
    assert info["score"]["false_kept"] == 1


def test_a_component_darker_on_cta_than_on_ncct_is_dropped_only_when_the_rule_asks():
    row = {"volume_mm3": 3.0, "mean_probability": 0.6, "ncct_mean_hu": 58.0, "cta_mean_hu": 46.0, "on_artery": True,
           "downstream_ratio": 1.0}
    assert ComponentRule().decide(row)[0] is True                         # off by default
    keep, reason, _ = ComponentRule(min_enhancement_hu=0.0).decide(row)
    assert keep is False
    assert reason.startswith("darker on CTA than on NCCT, not thrombus: CTA mean 46 HU - NCCT mean 58 HU = -12 HU < 0 HU")
    assert ComponentRule(min_enhancement_hu=-15.0).decide(row)[0] is True
    impervious = dict(row, cta_mean_hu=58.0)                              # enhancement exactly 0 HU: kept
    assert ComponentRule(min_enhancement_hu=0.0).decide(impervious)[0] is True
    assert ComponentRule(min_enhancement_hu=0.0).decide(dict(row, ncct_mean_hu=None))[0] is True  # unmeasured
    with pytest.raises(ValueError, match="min_enhancement_hu"):
        ComponentRule(min_enhancement_hu=float("nan"))
    assert ComponentRule.from_dict(ComponentRule(min_enhancement_hu=-10.0).to_dict()).min_enhancement_hu == -10.0
    assert ComponentRule.from_dict({"min_volume_mm3": 1.0}).min_enhancement_hu is None  # older files: off


def test_fit_stops_tightening_once_every_call_is_right():
    # a clot case with a weak extra component beside a strong clot, and a weak small clot elsewhere: a mean-probability
    # floor of 0.6 would remove the extra component without dropping a true one, but changes no call, so the fit
    # leaves the probability alone (the earlier objective, fewest false components, chose 0.6)
    cases = [[_c(40, 60, True, p=0.9), _c(5, 60, False, p=0.55)], [_c(12, 50, True, p=0.62)], [_c(30, 55, True, p=0.8)]]
    rule, info = fit_component_rule(cases)
    assert rule.min_mean_probability == 0.0
    assert info["score"] == {"true_dropped": 0, "false_kept": 1, "wrong_presence": 0}
    assert score_rule(replace(rule, min_mean_probability=0.6), cases) == (0, 0, 0)
    # a clot-free case whose only component is darker on CTA than on NCCT: the fit takes the enhancement floor
    cases.append([_c(3, 58, False, cta=46.0, p=0.6)])
    rule, info = fit_component_rule(cases)
    assert rule.min_enhancement_hu == -10.0 and info["score"]["wrong_presence"] == 0
    assert rule.min_mean_probability == 0.0
