import numpy as np
import pytest

from nnunet_thrombus.measure import length_mm, mean_diameter_mm, volume_mm3
from nnunet_thrombus.measure.length import length_details, principal_axis_extent_mm
from measure_shapes import cylinder, torus_arc

SPACINGS = [(0.625, 0.488, 0.488), (1.0, 0.5, 0.5)]
CYLINDERS = [  # (length mm, radius mm, axis (z, y, x))
    (15.0, 2.5, (1, 0, 0)),
    (15.0, 2.5, (0, 0, 1)),
    (20.0, 1.8, (1, 1, 2)),
    (25.0, 2.0, (0.3, 1, 0.2)),
    (8.0, 2.0, (0.2, 1, 1)),
]
TORI = [(10.0, 2.0, np.pi / 2), (8.0, 2.0, 0.8 * np.pi), (15.0, 1.8, np.pi / 3), (12.0, 2.5, np.pi / 2)]


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("length,radius,axis", CYLINDERS)
def test_cylinder_length_and_volume(spacing, length, radius, axis):
    mask, vol, true_len = cylinder(spacing, length, radius, axis)
    assert volume_mm3(mask, spacing) == pytest.approx(vol, rel=0.03)
    assert length_mm(mask, spacing) == pytest.approx(true_len, rel=0.05)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("bend,radius,angle", TORI)
def test_bent_tube_length_and_volume(spacing, bend, radius, angle):
    mask, vol, true_len = torus_arc(spacing, bend, radius, angle)
    assert volume_mm3(mask, spacing) == pytest.approx(vol, rel=0.03)
    details = length_details(mask, spacing)
    assert details["method"] == "skeleton"
    assert details["length_mm"] == pytest.approx(true_len, rel=0.05)


def test_plain_skeleton_undermeasures_short_clot_and_extension_fixes_it():
    spacing = (0.625, 0.488, 0.488)
    mask, _, true_len = cylinder(spacing, 8.0, 2.0, (0.2, 1, 1))
    det = length_details(mask, spacing)
    assert det["skeleton_mm"] < 0.8 * true_len  # the skeleton alone is far too short
    assert sum(det["extension_mm"]) > 0.2 * true_len
    assert det["length_mm"] == pytest.approx(true_len, rel=0.05)


def test_mean_diameter_of_cylinder():
    spacing = (1.0, 0.5, 0.5)
    mask, _, _ = cylinder(spacing, 20.0, 2.0, (0.3, 1, 0.2))
    assert mean_diameter_mm(mask, spacing) == pytest.approx(4.0, rel=0.05)


def test_largest_component_only_and_empty():
    spacing = (1.0, 0.5, 0.5)
    mask, _, true_len = cylinder(spacing, 20.0, 2.0, (0, 0, 1))
    speck = np.zeros_like(mask)
    speck[1:3, 1:3, 1:3] = True
    assert length_mm(mask | speck, spacing) == pytest.approx(length_mm(mask, spacing))
    assert length_mm(np.zeros((5, 5, 5)), spacing) == 0.0
    assert volume_mm3(np.zeros((5, 5, 5)), spacing) == 0.0
    assert mean_diameter_mm(np.zeros((5, 5, 5)), spacing) == 0.0


def test_blob_and_single_voxel():
    spacing = (1.0, 1.0, 1.0)
    zz, yy, xx = np.mgrid[:15, :15, :15]
    ball = (zz - 7) ** 2 + (yy - 7) ** 2 + (xx - 7) ** 2 <= 25  # radius 5 voxels: extent 11 voxels
    assert length_mm(ball, spacing) == pytest.approx(11.0, abs=1.0)
    one = np.zeros((5, 5, 5), bool)
    one[2, 2, 2] = True
    det = length_details(one, (0.625, 0.488, 0.488))
    assert det["method"] == "principal_axis"
    assert det["length_mm"] == pytest.approx(0.625)
    box = np.zeros((9, 9, 9), bool)
    box[3:6, 3:6, 2:7] = True
    assert principal_axis_extent_mm(box, spacing) == pytest.approx(5.0)
    assert length_mm(box, spacing) == pytest.approx(5.0, rel=0.05)


@pytest.mark.parametrize("bad", [(1.0, 1.0), (0.0, 1.0, 1.0), (1.0, -1.0, 1.0)])
def test_bad_spacing_raises(bad):
    with pytest.raises(ValueError, match="spacing"):
        volume_mm3(np.ones((2, 2, 2)), bad)
    with pytest.raises(ValueError, match="spacing"):
        length_mm(np.ones((2, 2, 2)), bad)


def test_2d_mask_raises():
    with pytest.raises(ValueError, match="3D"):
        volume_mm3(np.ones((4, 4)), (1, 1, 1))
