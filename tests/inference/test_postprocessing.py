"""Post-processing rules: exact voxel counts on hand-made masks, and the choice on validation cases."""
from __future__ import annotations

import numpy as np
import pytest

from nnunet_thrombus.inference.postprocessing import Postprocessing, choose_postprocessing, dice


def _two_blobs():
    m = np.zeros((10, 20, 20), np.uint8)
    m[2:5, 2:6, 2:6] = 1        # 48 voxels
    m[6:8, 12:15, 12:15] = 1    # 18 voxels
    return m


def test_largest_keeps_only_the_biggest_component():
    out = Postprocessing("largest").apply(_two_blobs(), (1.0, 0.5, 0.5))
    assert int(out.sum()) == 48 and out[3, 3, 3] == 1 and out[7, 13, 13] == 0


def test_diagonal_neighbours_are_one_component():
    m = np.zeros((5, 5, 5), np.uint8)
    m[1, 1, 1] = m[2, 2, 2] = m[3, 3, 3] = 1
    assert int(Postprocessing("largest").apply(m, (1, 1, 1)).sum()) == 3


def test_min_volume_empties_a_small_largest_component():
    # largest component 48 voxels x 0.25 mm^3 = 12 mm^3
    assert int(Postprocessing("largest_min_volume", 12.5).apply(_two_blobs(), (1.0, 0.5, 0.5)).sum()) == 0
    assert int(Postprocessing("largest_min_volume", 11.5).apply(_two_blobs(), (1.0, 0.5, 0.5)).sum()) == 48


def test_none_and_empty_masks_pass_through():
    assert int(Postprocessing("none").apply(_two_blobs(), (1, 1, 1)).sum()) == 66
    assert int(Postprocessing("largest").apply(np.zeros((4, 4, 4)), (1, 1, 1)).sum()) == 0


def test_bad_rule_raises():
    with pytest.raises(ValueError, match="postprocessing rule"):
        Postprocessing("biggest")
    with pytest.raises(ValueError, match="min_volume_mm3"):
        Postprocessing("largest_min_volume", -1.0)


def test_choice_on_validation_cases(tmp_path):
    ref = np.zeros((10, 20, 20), np.uint8)
    ref[2:5, 2:6, 2:6] = 1
    noisy = _two_blobs()                                    # true clot + one false component
    empty_ref = np.zeros_like(ref)
    small_fp = np.zeros_like(ref)
    small_fp[6:8, 12:15, 12:15] = 1                        # 18 voxels = 18 mm^3 at 1 mm spacing
    cases = [(noisy, ref, (1, 1, 1)), (small_fp, empty_ref, (1, 1, 1))]
    chosen, scores = choose_postprocessing(cases, min_volume_mm3=20.0)
    assert scores["none"] == pytest.approx((2 * 48 / (66 + 48) + 0.0) / 2)
    assert scores["largest"] == pytest.approx((1.0 + 0.0) / 2)
    assert scores["largest_min_volume"] == pytest.approx(1.0)
    assert chosen.rule == "largest_min_volume" and chosen.min_volume_mm3 == 20.0
    chosen.save(tmp_path / "pp.json", {"validation_mean_dice": scores})
    assert Postprocessing.load(tmp_path / "pp.json") == chosen
    # when nothing helps, the simplest rule wins
    chosen, _ = choose_postprocessing([(ref, ref, (1, 1, 1))], min_volume_mm3=1.0)
    assert chosen.rule == "none"


def test_dice_convention():
    assert dice(np.zeros((1, 1, 3)), np.zeros((1, 1, 3))) == 1.0
    assert dice(np.ones((1, 1, 3)), np.zeros((1, 1, 3))) == 0.0


def test_apply_to_folder_rewrites_only_changed_masks(tmp_path):
    import SimpleITK as sitk

    from nnunet_thrombus.inference.postprocessing import apply_to_folder

    img = sitk.GetImageFromArray(_two_blobs())
    img.SetSpacing((0.5, 0.5, 1.0))
    sitk.WriteImage(img, str(tmp_path / "A.nii.gz"))
    one = np.zeros((10, 20, 20), np.uint8)
    one[1:3, 1:3, 1:3] = 1
    sitk.WriteImage(sitk.GetImageFromArray(one), str(tmp_path / "B.nii.gz"))
    assert apply_to_folder(tmp_path, tmp_path / "absent.json") == 0
    Postprocessing("largest").save(tmp_path / "pp.json")
    assert apply_to_folder(tmp_path, tmp_path / "pp.json") == 1
    out = sitk.ReadImage(str(tmp_path / "A.nii.gz"))
    assert int(sitk.GetArrayFromImage(out).sum()) == 48 and out.GetSpacing() == (0.5, 0.5, 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.nii.gz", "B.nii.gz", "pp.json"]
