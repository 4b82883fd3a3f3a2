"""Measurements of the synthetic phantom's truth mask against the generator's truth."""
import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_thrombus.measure import ImageGeometry, classify_site, density_hu, perviousness_hu
from nnunet_thrombus.synthetic import phantom


@pytest.mark.parametrize("seed,site", [(2, "ICA"), (3, "M1"), (6, "ICA")])
def test_density_and_perviousness_of_truth_mask(seed, site):
    case = phantom.generate_case(seed, "demo", site=site, calcification=False, noise=False, blur=False,
                                 rigid=False, streaks=False)
    mask = sitk.GetArrayFromImage(case.label) > 0
    ncct = np.asarray(case.clean["ncct"], float)
    cta = np.asarray(case.clean["cta"], float)
    dens = density_hu(ncct, mask)
    assert dens["eroded"]
    assert dens["mean_hu"] == pytest.approx(case.truth["ncct_density_hu"], abs=2.0)
    assert perviousness_hu(cta, ncct, mask) == pytest.approx(case.truth["perviousness_hu"], abs=2.0)


def test_site_classification_accuracy_on_tiny_cases():
    hits, total = 0, 0
    for seed in range(26):
        case = phantom.generate_case(seed, "tiny", noise=False, blur=False, rigid=False)
        mask = sitk.GetArrayFromImage(case.label) > 0
        if case.truth["site"] == "none":
            assert not mask.any()
            continue
        total += 1
        site = classify_site(mask, ImageGeometry.from_image(case.label), sitk.GetArrayFromImage(case.brain_mask) > 0)
        hits += site == case.truth["site"]
    print(f"site classification on tiny phantoms: {hits}/{total}")
    assert total >= 18
    assert hits / total >= 0.9
