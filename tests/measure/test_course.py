"""measure.course: a clot's principal axis in patient space and the artery at the carotid T it follows."""
import numpy as np
import pytest

from nnunet_thrombus.calibration.lvo import LVOThresholds, refined_site
from nnunet_thrombus.measure.components import measure_components
from nnunet_thrombus.measure.course import ARTERY_DIRECTIONS, artery_at_carotid_t, principal_axis_lps, to_side_frame
from nnunet_thrombus.measure.location import ImageGeometry

# an oblique, flipped grid: index x runs to patient right, index y to patient superior, index z to anterior
DIRECTION = (-1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 1.0, 0.0)
SPACING = (0.8, 0.5, 0.6)  # (z, y, x) mm


def tube(direction_lps, length_mm=14.0, radius_mm=1.2, shape=(48, 80, 64)):
    """A straight cylinder through the grid centre along a patient LPS direction, on the DIRECTION grid."""
    geo = ImageGeometry(SPACING, (0.0, 0.0, 0.0), DIRECTION)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    pts = geo.index_to_patient(idx.astype(float))
    centre = geo.index_to_patient((np.array(shape) - 1) / 2.0)
    d = np.asarray(direction_lps, float) / np.linalg.norm(direction_lps)
    rel = pts - centre
    along = rel @ d
    radial = np.linalg.norm(rel - along[:, None] * d, axis=1)
    mask = ((np.abs(along) <= length_mm / 2) & (radial <= radius_mm)).reshape(shape)
    return mask, geo


def lps(artery, side):
    """An artery's direction of ARTERY_DIRECTIONS in patient LPS for a clot on ``side``."""
    lat, ant, sup = ARTERY_DIRECTIONS[artery]
    return (lat if side == "L" else -lat, -ant, sup)


@pytest.mark.parametrize("direction", [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0.6, -0.75, 0.28), (-0.3, 0.2, 0.93)])
def test_principal_axis_is_the_tube_direction_in_patient_space(direction):
    mask, geo = tube(direction)
    axis = np.asarray(principal_axis_lps(mask, geo))
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    angle = np.degrees(np.arccos(min(1.0, abs(float(axis @ d)))))
    assert angle < 2.0 and axis[0] >= 0 and abs(np.linalg.norm(axis) - 1) < 1e-9


def test_side_frame_mirrors_x_and_points_y_forward():
    assert to_side_frame((0.5, -0.2, 0.1), "L").tolist() == [0.5, 0.2, 0.1]
    assert to_side_frame((0.5, -0.2, 0.1), "R").tolist() == [-0.5, 0.2, 0.1]
    with pytest.raises(ValueError):
        to_side_frame((1, 0, 0), "midline")


@pytest.mark.parametrize("side", ["L", "R"])
@pytest.mark.parametrize("artery", ["ICA", "A1", "M1"])
def test_tubes_along_each_artery_are_named_on_both_sides(artery, side):
    mask, geo = tube(lps(artery, side))
    axis = principal_axis_lps(mask, geo)
    assert artery_at_carotid_t(axis, side, elongation=14.0 / 2.4)[0] == artery


def test_a_head_pitched_20_degrees_keeps_the_names():
    t = np.radians(20.0)  # nodding: rotate about the left-right axis
    rot = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    for artery in ARTERY_DIRECTIONS:
        for sign in (1, -1):
            d = (rot if sign > 0 else rot.T) @ np.asarray(lps(artery, "L"))
            assert artery_at_carotid_t(tuple(d), "L", 5.0)[0] == artery


def test_stubby_or_ambiguous_clots_have_no_course():
    assert artery_at_carotid_t(lps("A1", "L"), "L", elongation=1.1)[0] is None
    between = np.asarray(lps("A1", "L")) / np.linalg.norm(lps("A1", "L")) + np.asarray(lps("M1", "L")) / np.linalg.norm(
        lps("M1", "L"))
    assert artery_at_carotid_t(tuple(between), "L", 5.0)[0] is None
    assert artery_at_carotid_t(None, "L", 5.0)[0] is None


def thin_ica_zone(artery, side="L", lr=0.2, length=10.0, d=3.0):
    return {"site": "ICA", "mean_diameter_mm": d, "length_mm": length, "side": side,
            "axis_lps": list(lps(artery, side)), "site_coordinates": [lr, 0.44, 0.18], "volume_mm3": 70.0}


def test_refined_site_follows_the_axis_not_the_position():
    rule = LVOThresholds(min_ica_diameter_mm=4.0, carotid_t_lr=0.23)
    # lateral of the carotid T, where the position rule says M1, but running medially and forwards: A1
    site, note = refined_site(thin_ica_zone("A1", lr=0.26), rule)
    assert site == "ACA" and "medially and forwards" in note
    assert refined_site(thin_ica_zone("M1", side="R", lr=0.15), rule)[0] == "M1"   # medial, but runs laterally
    assert refined_site(thin_ica_zone("ICA", lr=0.15), rule)[0] == "ICA"           # a thin (partial) ICA clot
    stub = thin_ica_zone("A1", lr=0.26, length=3.3)                                  # 3.3 / 3.0 < 1.2: position
    site, note = refined_site(stub, rule)
    assert site == "M1" and "no clear axis" in note
    assert refined_site(dict(thin_ica_zone("A1"), mean_diameter_mm=5.0), rule) == ("ICA", None)  # ICA calibre


def test_components_carry_the_axis():
    mask, geo = tube(lps("M1", "L"))
    comps = measure_components(mask, spacing=geo.spacing, origin=geo.origin, direction=geo.direction)
    axis = np.asarray(comps[0]["axis_lps"])
    d = np.asarray(lps("M1", "L")) / np.linalg.norm(lps("M1", "L"))
    assert len(comps) == 1 and abs(float(axis @ d)) > 0.999
