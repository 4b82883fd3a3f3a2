"""ICA calibre check of the site (calibration.lvo.refined_site, fit_ica_calibre) and its fit (calibration.validation)."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_thrombus.calibration.lvo import (LVOThresholds, call_flags, fit_ica_calibre, fit_lvo_thresholds, lvo_call,
                                             refine_sites, refined_site, small_call_volume_mm3)

RULE = LVOThresholds(min_volume_mm3=5.0, min_ica_diameter_mm=4.0)


def comp(site="ICA", d=3.0, lr=0.15, vol=40.0):
    return {"site": site, "mean_diameter_mm": d, "site_coordinates": [lr, 0.44, 0.18], "volume_mm3": vol}


@pytest.mark.parametrize("c, site", [
    (comp(d=3.0, lr=0.15), "ACA"),      # thin, medial of the carotid T: A1 origin
    (comp(d=3.0, lr=0.30), "M1"),       # thin, lateral: proximal M1
    (comp(d=4.0, lr=0.15), "ICA"),      # at the floor: still ICA
    (comp(d=5.5, lr=0.15), "ICA"),      # ICA calibre
    (comp(site="M2", d=2.0), "M2"),     # only the ICA zone is checked
    (comp(d=None), "ICA"),              # no diameter: nothing to check
])
def test_refined_site(c, site):
    assert refined_site(c, RULE)[0] == site


def test_refined_site_off_without_floor_and_notes_the_change():
    assert refined_site(comp(d=1.0), LVOThresholds()) == ("ICA", None)
    new, note = refined_site(comp(d=3.0, lr=0.15), RULE)
    assert new == "ACA" and "3.00 mm < 4 mm" in note and "A1" in note
    rows = refine_sites([comp(d=3.0, lr=0.15), comp(d=6.0)], RULE)
    assert [r["site"] for r in rows] == ["ACA", "ICA"]
    assert rows[0]["site_zone"] == "ICA" and "site_note" not in rows[1]


def test_lvo_call_uses_the_refined_site():
    assert lvo_call([comp(d=3.0, lr=0.15)], RULE)["call"] == "non-LVO occlusion"
    assert lvo_call([comp(d=3.0, lr=0.30)], RULE)["call"] == "LVO"      # M1 is a large vessel
    assert lvo_call([comp(d=5.0, lr=0.15)], RULE)["call"] == "LVO"
    assert lvo_call([comp(d=3.0, lr=0.15)], LVOThresholds())["call"] == "LVO"  # no floor: the zone decides


def test_call_flags_name_what_the_call_hinges_on():
    assert call_flags([comp(d=3.0, lr=0.15)], RULE) == ["site_by_calibre"]       # the calibre check made it ACA
    assert call_flags([comp(d=5.0, lr=0.15)], RULE) == []                        # ICA calibre: the zone decides
    assert call_flags([comp(d=5.0, vol=9.9)], RULE) == ["small_call"]            # under 2 x 5 mm3
    assert call_flags([comp(d=5.0, vol=10.0)], RULE) == []
    assert call_flags([comp(d=3.0, vol=4.9)], RULE) == []                        # under the minimum: no call
    # the largest component decides, as in lvo_call: a thin speck beside a large ICA clot raises nothing
    assert call_flags([comp(d=3.0, vol=6.0), comp(d=5.0, vol=40.0)], RULE) == []
    assert small_call_volume_mm3(LVOThresholds(min_volume_mm3=8.0)) == 16.0
    assert small_call_volume_mm3(LVOThresholds(min_volume_mm3=0.0)) == 10.0     # a fitted 0 keeps a margin
    assert call_flags([comp(site="M2", vol=3.0)], LVOThresholds(min_volume_mm3=0.0)) == ["small_call"]


def test_rule_json_round_trip_and_old_files(tmp_path):
    RULE.save(tmp_path / "r.json")
    assert LVOThresholds.load(tmp_path / "r.json") == RULE
    (tmp_path / "old.json").write_text(json.dumps({"min_volume_mm3": 5.0, "lvo_sites": ["ICA", "M1"],
                                                   "min_lvo_diameter_mm": None}))
    assert LVOThresholds.load(tmp_path / "old.json").min_ica_diameter_mm is None
    with pytest.raises(ValueError):
        LVOThresholds(min_ica_diameter_mm=-1.0)
    with pytest.raises(ValueError):
        LVOThresholds(carotid_t_lr=1.5)


def test_fit_ica_calibre():
    assert fit_ica_calibre([5.0, 5.5, 6.0]) == pytest.approx(0.7 * 5.5)
    assert fit_ica_calibre([5.0, 6.0]) is None                 # too few references
    assert fit_ica_calibre([5.0, None, float("nan"), 6.0, 7.0]) == pytest.approx(4.2)


def test_fit_lvo_thresholds_keeps_the_floor_only_when_validation_agrees():
    a1 = ([comp(d=3.0, lr=0.15)], "non-LVO occlusion")
    ica = ([comp(d=5.5, lr=0.25, vol=300.0)], "LVO")
    free = ([], "no occlusion")
    assert fit_lvo_thresholds([a1, ica, free], ica_diameter_mm=4.0).min_ica_diameter_mm == 4.0
    # a thin true ICA clot medial of the T: the floor would call it ACA, so the fit leaves it out
    thin_ica = ([comp(d=3.5, lr=0.2, vol=120.0)], "LVO")
    assert fit_lvo_thresholds([thin_ica, ica, free], ica_diameter_mm=4.0).min_ica_diameter_mm is None
    assert fit_lvo_thresholds([a1, ica, free]).min_ica_diameter_mm is None


def test_ica_reference_diameters_reads_only_ica_training_labels(tmp_path):
    from nnunet_thrombus.calibration.validation import ica_reference_diameters

    (tmp_path / "labelsTr").mkdir()
    # a straight cylinder of radius 2.5 voxels along x, 0.5 mm voxels: diameter about 2.5 mm, length 10 mm
    z, y, x = np.mgrid[:20, :20, :40]
    tube = (((z - 10) ** 2 + (y - 10) ** 2) <= 2.5 ** 2) & (x >= 10) & (x < 30)
    for case in ("ICA_1", "ACA_1"):
        img = sitk.GetImageFromArray(tube.astype(np.uint8))
        img.SetSpacing((0.5, 0.5, 0.5))
        sitk.WriteImage(img, str(tmp_path / "labelsTr" / f"{case}.nii.gz"))
    out = ica_reference_diameters(tmp_path, {"ICA_1": "ICA", "ACA_1": "ACA", "ICA_missing": "ICA"})
    assert list(out) == ["ICA_1"]
    # the voxelised disc of radius 2.5 voxels has 21 voxels: equivalent diameter 2*sqrt(21/pi) * 0.5 mm = 2.59 mm
    assert out["ICA_1"] == pytest.approx(2 * np.sqrt(21 / np.pi) * 0.5, rel=0.08)


def test_a1_origin_truth_masks_of_the_generator_become_aca():
    """Demo-preset generator truth: ACA seed 23003 lies in the site rule's ICA zone (site "ICA", SYNTHETIC); with the
    floor fitted on three ICA truth masks it is called ACA, and the ICA masks stay ICA."""
    from nnunet_thrombus.measure.components import measure_components
    from nnunet_thrombus.synthetic.phantom import generate_case

    def largest(seed, site):
        case = generate_case(seed, "demo", site=site)
        lab = sitk.GetArrayFromImage(case.label) > 0
        return measure_components(lab, None, None, sitk.GetArrayFromImage(case.brain_mask) > 0,
                                  spacing=case.label.GetSpacing()[::-1], origin=case.label.GetOrigin(),
                                  direction=case.label.GetDirection())[0]

    icas = [largest(s, "ICA") for s in (20000, 20001, 20002)]
    a1 = largest(23003, "ACA")
    assert a1["site"] == "ICA" and all(c["site"] == "ICA" for c in icas)
    floor = fit_ica_calibre([c["mean_diameter_mm"] for c in icas])
    assert 3.4 < floor < 4.4
    rule = LVOThresholds(min_ica_diameter_mm=floor)
    assert refined_site(a1, rule)[0] == "ACA"
    assert [refined_site(c, rule)[0] for c in icas] == ["ICA"] * 3
    assert lvo_call([a1], rule)["call"] == "non-LVO occlusion"
