"""measure/ judged on shapes whose truth is known in closed form, not by the synthetic generator.

A straight clot is a cylinder of radius r and length L on an oblique axis, voxelised on an anisotropic grid:
volume pi r^2 L, length L, mean diameter 2 r. Its NCCT and CTA are piecewise constant (clot, vessel lumen
continuing beyond both ends, brain), sharp or blurred by a Gaussian (partial volume at every edge), so the core
density and perviousness must come from the clot core, not its rim. The targets are written here.
"""
import numpy as np
import pytest
from scipy import ndimage

from nnunet_thrombus.measure import measure_components

SPACING = (0.8, 0.45, 0.45)      # (z, y, x) mm
CLOT_NCCT_HU, CLOT_CTA_HU = 62.0, 78.0
LUMEN_CTA_HU, BLOOD_NCCT_HU, BRAIN_HU = 380.0, 42.0, 32.0
#: targets (relative for volume, length, diameter; HU for density and perviousness)
TARGETS = {"volume": 0.04, "length": 0.06, "diameter": 0.08, "hu": 3.0}


def _oblique_clot(radius_mm, length_mm, blur_mm=0.3, axis=(0.35, 0.5, 0.8), shape_mm=(40.0, 44.0, 44.0)):
    """(clot mask, vessel mask, ncct, cta): the clot is the middle L mm of a vessel of radius r on ``axis``."""
    sp = np.asarray(SPACING)
    shape = np.ceil(np.asarray(shape_mm) / sp).astype(int)
    centre = (shape / 2.0 + np.asarray([0.31, 0.17, 0.23])) * sp       # off the voxel grid
    z, y, x = np.meshgrid(*[np.arange(n) * s - c for n, s, c in zip(shape, sp, centre)], indexing="ij")
    d = np.asarray(axis, float) / np.linalg.norm(axis)
    t = z * d[0] + y * d[1] + x * d[2]
    r2 = z ** 2 + y ** 2 + x ** 2 - t ** 2
    vessel = r2 <= radius_mm ** 2
    clot = vessel & (np.abs(t) <= length_mm / 2)
    ncct = np.where(clot, CLOT_NCCT_HU, np.where(vessel, BLOOD_NCCT_HU, BRAIN_HU))
    cta = np.where(clot, CLOT_CTA_HU, np.where(vessel, LUMEN_CTA_HU, BRAIN_HU))
    if not blur_mm:
        return clot, vessel, ncct, cta
    blur = [blur_mm / s for s in SPACING]
    return clot, vessel, ndimage.gaussian_filter(ncct, blur), ndimage.gaussian_filter(cta, blur)


@pytest.mark.parametrize("radius, length, blur_mm", [(1.6, 8.0, 0.0), (2.2, 14.0, 0.0), (1.2, 20.0, 0.0),
                                                     (1.6, 8.0, 0.3), (2.2, 14.0, 0.3)])
def test_cylinder_clot_measures_its_closed_form_truth(radius, length, blur_mm):
    clot, _, ncct, cta = _oblique_clot(radius, length, blur_mm)
    rows = measure_components(clot, ncct, cta, None, spacing=SPACING)
    assert len(rows) == 1
    c = rows[0]
    assert c["volume_mm3"] == pytest.approx(np.pi * radius ** 2 * length, rel=TARGETS["volume"])
    assert c["length_mm"] == pytest.approx(length, rel=TARGETS["length"])
    assert c["mean_diameter_mm"] == pytest.approx(2 * radius, rel=TARGETS["diameter"])
    assert abs(c["ncct_mean_hu"] - CLOT_NCCT_HU) <= TARGETS["hu"]
    assert abs(c["perviousness_hu"] - (CLOT_CTA_HU - CLOT_NCCT_HU)) <= TARGETS["hu"]


@pytest.mark.parametrize("blur_mm", [0.3, 0.6])
def test_the_core_is_closer_to_the_truth_than_the_whole_mask(blur_mm):
    """The reason for the eroded core: over the whole mask the bright lumen and the darker brain blur into it."""
    clot, _, ncct, cta = _oblique_clot(2.2, 14.0, blur_mm)
    truth = CLOT_CTA_HU - CLOT_NCCT_HU
    whole_mask = float(cta[clot].mean() - ncct[clot].mean())
    c = measure_components(clot, ncct, cta, None, spacing=SPACING)[0]
    assert abs(c["perviousness_hu"] - truth) < abs(whole_mask - truth)
    assert abs(c["ncct_mean_hu"] - CLOT_NCCT_HU) < abs(float(ncct[clot].mean()) - CLOT_NCCT_HU)


def test_two_separate_cylinders_are_two_components_and_touching_corners_are_one():
    clot, _, ncct, cta = _oblique_clot(1.6, 8.0)
    shifted = np.zeros_like(clot)
    shifted[:, :, 40:] = clot[:, :, :-40]          # 18 mm along x: apart from the first
    rows = measure_components(clot | shifted, ncct, cta, None, spacing=SPACING)
    assert len(rows) == 2
    a = np.zeros((3, 3, 3), bool)
    a[0, 0, 0] = a[1, 1, 1] = True            # corner neighbours: one clot under 26-connectivity
    assert len(measure_components(a, spacing=(1.0, 1.0, 1.0))) == 1
