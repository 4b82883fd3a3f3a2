"""Post-processing by evidence: the stored rule, its fit on validation cases, legacy files, and folders of masks."""
from __future__ import annotations

import json

import numpy as np
import pytest

from nnunet_thrombus.calibration.components import ComponentRule
from nnunet_thrombus.calibration.postprocessing import Postprocessing, choose_postprocessing
from nnunet_thrombus.masks import dice


def _scene():
    """30 x 30 x 60 at 1 mm: artery along x at z=y=10 (CTA 300 HU); a 48-voxel clot in it (NCCT 60, CTA 70) and a
    larger 75-voxel plaque on its wall on the other side (NCCT 180, CTA 350, patent artery around and opposite it): the
    largest component is the mimic."""
    shape = (30, 30, 60)
    cta, ncct = np.full(shape, 40.0), np.full(shape, 35.0)
    cta[9:12, 9:12, :] = 300.0
    clot = np.zeros(shape, np.uint8)
    clot[9:12, 9:13, 4:8] = 1
    cta[clot > 0], ncct[clot > 0] = 70.0, 60.0
    plaque = np.zeros(shape, np.uint8)
    plaque[12:15, 8:13, 40:45] = 1
    cta[plaque > 0], ncct[plaque > 0] = 350.0, 180.0
    return clot, plaque, ncct, cta


def test_largest_is_no_longer_the_rule_the_clot_survives_a_bigger_mimic():
    clot, plaque, ncct, cta = _scene()
    pred = clot | plaque
    assert int(plaque.sum()) > int(clot.sum())
    out = Postprocessing().apply(pred, (1, 1, 1), ncct=ncct, cta=cta)
    assert np.array_equal(out, clot)
    sel = Postprocessing().select(pred, (1, 1, 1), ncct=ncct, cta=cta)
    assert sel["dropped"][0]["reason"].startswith("calcification, not thrombus: NCCT mean 180 HU")
    # "none" keeps everything and says so
    sel = Postprocessing("none").select(pred, (1, 1, 1), ncct=ncct, cta=cta)
    assert len(sel["kept"]) == 2 and all(c["reason"].startswith("post-processing off") for c in sel["kept"])


def test_without_images_only_volume_and_probability_count():
    clot, plaque, _, _ = _scene()
    out = Postprocessing("evidence", ComponentRule(min_volume_mm3=50.0)).apply(clot | plaque, (1, 1, 1))
    assert int(out.sum()) == 75                 # the 48-voxel one is below 50 mm3; nothing else is tested
    assert int(Postprocessing().apply(np.zeros((4, 4, 4)), (1, 1, 1)).sum()) == 0


def test_bad_rule_and_legacy_files(tmp_path):
    with pytest.raises(ValueError, match="postprocessing rule"):
        Postprocessing("biggest")
    (tmp_path / "old.json").write_text(json.dumps({"rule": "largest_min_volume", "min_volume_mm3": 40.0}))
    assert Postprocessing.load(tmp_path / "old.json") == Postprocessing()     # size rules are not honoured
    rule = Postprocessing("evidence", ComponentRule(calcification_hu=100.0, min_volume_mm3=2.5))
    rule.save(tmp_path / "pp.json", {"note": "x"})
    assert Postprocessing.load(tmp_path / "pp.json") == rule


def test_choice_on_validation_cases():
    clot, plaque, ncct, cta = _scene()
    empty = np.zeros_like(clot)
    cases = [{"pred": clot | plaque, "ref": clot, "spacing": (1, 1, 1), "ncct": ncct, "cta": cta},
             {"pred": plaque, "ref": empty, "spacing": (1, 1, 1), "ncct": ncct, "cta": cta}]
    chosen, info = choose_postprocessing(cases)
    assert chosen == Postprocessing("evidence", ComponentRule())
    assert info["validation_mean_dice"]["none"] == pytest.approx((2 * 48 / (123 + 48) + 0.0) / 2)
    assert info["validation_mean_dice"]["evidence"] == pytest.approx(1.0)
    assert info["fit"]["score"] == {"true_dropped": 0, "false_kept": 0, "wrong_presence": 0}
    assert info["fit"]["n_true_components"] == 1 and info["fit"]["n_components"] == 3


def test_dice_convention():
    assert dice(np.zeros((1, 1, 3)), np.zeros((1, 1, 3))) == 1.0
    assert dice(np.ones((1, 1, 3)), np.zeros((1, 1, 3))) == 0.0


def test_apply_to_folder_uses_the_images_and_rewrites_only_changed_masks(tmp_path):
    import SimpleITK as sitk

    from nnunet_thrombus.inference.postprocessing import apply_to_folder

    clot, plaque, ncct, cta = _scene()
    masks, images = tmp_path / "masks", tmp_path / "images"
    masks.mkdir()
    images.mkdir()
    for name, arr in (("A", clot | plaque), ("B", clot)):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((1.0, 1.0, 1.0))
        sitk.WriteImage(img, str(masks / f"{name}.nii.gz"))
        sitk.WriteImage(sitk.GetImageFromArray(cta.astype(np.int16)), str(images / f"{name}_0000.nii.gz"))
        sitk.WriteImage(sitk.GetImageFromArray(ncct.astype(np.int16)), str(images / f"{name}_0001.nii.gz"))
    assert apply_to_folder(masks, tmp_path / "absent.json") == 0
    Postprocessing().save(tmp_path / "pp.json")
    assert apply_to_folder(masks, tmp_path / "pp.json") == 0          # without images: nothing to hold against them
    assert apply_to_folder(masks, tmp_path / "pp.json", images_dir=images) == 1
    out = sitk.GetArrayFromImage(sitk.ReadImage(str(masks / "A.nii.gz")))
    assert np.array_equal(out, clot)
    assert sorted(p.name for p in masks.iterdir()) == ["A.nii.gz", "B.nii.gz"]
