"""Numbers of one synthetic patient: HU per tissue, clot geometry, misalignment, determinism."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnunet_thrombus.synthetic.anatomy import TISSUE_CODES
from nnunet_thrombus.synthetic.phantom import euler_from_truth, generate_case

from ._helpers import geodesic_length_mm

HU_RANGES = {  # tissue: (NCCT range, CTA range), on eroded noise-free tissue masks
    "skull": ((700, 1900), (700, 1900)), "scalp": ((20, 60), (20, 70)), "grey_matter": ((35, 45), (35, 45)),
    "white_matter": ((20, 30), (20, 30)), "ventricle": ((0, 15), (0, 15)), "artery": ((40, 45), (250, 500)),
    "air": ((-1001, -999), (-1001, -999)),
}


@pytest.fixture(scope="module")
def clean_case():
    return generate_case(3, "tiny", noise=False, blur=False, streaks=False, calcification=True)


@pytest.mark.parametrize("tissue", sorted(HU_RANGES))
def test_tissue_hu_ranges_both_modalities(clean_case, tissue):
    core = ndimage.binary_erosion(clean_case.tissue == TISSUE_CODES[tissue])
    assert core.sum() >= 5
    for mod, (lo, hi) in zip(("ncct", "cta"), HU_RANGES[tissue]):
        lo_p, hi_p = np.percentile(clean_case.clean[mod][core], [2, 98])
        assert lo <= lo_p and hi_p <= hi, (tissue, mod, lo_p, hi_p)


def test_intrinsic_hu_table_in_ranges(clean_case):
    hu = clean_case.truth["tissue_hu"]
    assert 0 <= hu["ncct"]["csf"] <= 15 and 0 <= hu["cta"]["csf"] <= 15
    assert 1500 <= hu["ncct"]["cortical_bone"] <= 1900 and 700 <= hu["ncct"]["diploe"] <= 1000
    assert 40 <= hu["ncct"]["blood"] <= 45 and 250 <= hu["cta"]["blood"] <= 500


def test_calcification_bright_on_both_scans(clean_case):
    calc = clean_case.tissue == TISSUE_CODES["calcification"]
    assert clean_case.truth["calcification"] and calc.sum() >= 1
    assert clean_case.clean["ncct"][calc].min() > 130 and clean_case.clean["cta"][calc].min() > 130


def test_noise_level_matches_truth():
    case = generate_case(5, "tiny", rigid=False, blur=False, streaks=False)
    core = ndimage.binary_erosion(case.tissue == TISSUE_CODES["white_matter"], iterations=2)
    ncct = sitk.GetArrayFromImage(case.ncct).astype(float)
    sd = np.std(ncct[core] - case.clean["ncct"][core])
    assert 3 <= case.truth["ncct_noise_hu"] <= 8
    assert abs(sd - case.truth["ncct_noise_hu"]) < 0.25 * case.truth["ncct_noise_hu"] + 0.5


@pytest.mark.parametrize("seed", range(8))
def test_thrombus_inside_artery_lumen(seed):
    case = generate_case(seed, "tiny")
    label = sitk.GetArrayFromImage(case.label)
    artery = sitk.GetArrayFromImage(case.artery_mask)
    brain = sitk.GetArrayFromImage(case.brain_mask)
    t = case.truth
    assert t["site"] in ("ICA", "M1", "M2", "ACA", "none")
    assert bool(label.any()) == t["occluded"]
    assert t["lvo"] == (t["site"] in ("ICA", "M1"))
    assert np.all(artery[label > 0] == 1) and np.all(brain[label > 0] == 1)
    assert set(np.unique(label)) <= {0, 1}
    if t["occluded"]:
        assert 3.0 <= t["length_mm"] <= 40.0 and t["side"] in ("L", "R")
        assert 38.0 <= t["ncct_density_hu"] <= 70.0 and 0.0 <= t["perviousness_hu"] <= 30.0


@pytest.mark.parametrize("site,length,seed", [("M1", 14.0, 1), ("ICA", 14.0, 1), ("ACA", 12.0, 0)])
def test_volume_length_density_match_truth_demo(site, length, seed):
    # at real calibre (the demo preset itself draws arteries 1.6x wider, see presets.py)
    case = generate_case(seed, "demo", site=site, clot_length_mm=length, noise=False, blur=False, isodense=False,
                         streaks=False, vessel_calibre=1.0)
    label = sitk.GetArrayFromImage(case.label) > 0
    spacing = case.label.GetSpacing()[::-1]
    t = case.truth
    vol = label.sum() * np.prod(spacing)
    assert abs(vol - t["volume_mm3"]) <= 0.1 * t["volume_mm3"]
    assert abs(geodesic_length_mm(label, spacing) - t["length_mm"]) <= 0.1 * t["length_mm"]
    core = ndimage.binary_erosion(label)
    if core.sum() >= 3:
        ncct = float(np.mean(case.clean["ncct"][core]))
        perv = float(np.mean(case.clean["cta"][core] - case.clean["ncct"][core]))
        assert 45 <= ncct <= 72 and abs(ncct - t["ncct_density_hu"]) < 4
        assert abs(perv - t["perviousness_hu"]) < 4


def test_isodense_override():
    t = generate_case(1, "tiny", site="M1", isodense=True).truth
    assert t["isodense"] and 38.0 <= t["ncct_density_hu"] < 45.0


def test_distal_contrast_reduced():
    case = generate_case(2, "tiny", site="M1", side="L", noise=False, blur=False, streaks=False, calcification=False)
    art = case.tissue == TISSUE_CODES["artery"]
    x = (np.arange(case.tissue.shape[2]) * case.cta.GetSpacing()[0] + case.cta.GetOrigin()[0])[None, None, :]
    lateral = 0.5 * 33.0 * 0.45
    brain = sitk.GetArrayFromImage(case.brain_mask) > 0  # lumen voxels next to the skull base mix with bone
    left = art & (x > lateral) & brain     # left MCA territory (LPS: +x = patient left)
    right = art & (x < -lateral) & brain
    assert left.sum() >= 20 and right.sum() >= 20
    assert np.median(case.clean["cta"][left]) < 0.6 * np.median(case.clean["cta"][right])


def test_misalignment_equals_recorded_transform():
    case = generate_case(4, "tiny", noise=False, blur=False, streaks=False)
    tr = euler_from_truth(case.truth)
    angle = np.degrees(np.arccos((np.trace(np.array(tr.GetMatrix()).reshape(3, 3)) - 1) / 2))
    assert 1.0 <= angle <= 10.01 and 2.0 <= np.linalg.norm(tr.GetTranslation()) <= 10.0
    ref = case.clean["ncct"]

    def error(shift):
        t = sitk.Euler3DTransform(tr)
        t.SetTranslation([a + b for a, b in zip(tr.GetTranslation(), shift)])
        out = sitk.GetArrayFromImage(sitk.Resample(case.ncct, case.cta, t, sitk.sitkLinear, -5000.0, sitk.sitkFloat32))
        valid = out > -4000  # CTA voxels that map inside the NCCT field of view
        return float(np.mean(np.abs(out - ref)[valid]))

    shifts = [(0, 0, 0)] + [tuple(d * s * e for e in np.eye(3)[k]) for k in range(3) for s in (-1, 1) for d in (1,)]
    errors = [error(s) for s in shifts]
    assert int(np.argmin(errors)) == 0 and min(errors[1:]) > 1.3 * errors[0]
    # the resampled NCCT stored in the case is the same resampling
    direct = sitk.GetArrayFromImage(sitk.Resample(case.ncct, case.cta, tr, sitk.sitkLinear, -1024.0, sitk.sitkInt16))
    assert np.array_equal(direct, sitk.GetArrayFromImage(case.ncct_on_cta))
    # the recorded direction, checked without sitk.Resample: the NCCT sampled (numpy, trilinear) at T(p) for CTA
    # brain voxels p reproduces the noise-free NCCT rendered at p; at p itself (T ignored) or at T^-1(p) it does not
    brain = np.argwhere(sitk.GetArrayFromImage(case.brain_mask) > 0)
    p = brain[:, ::-1] * np.array(case.cta.GetSpacing()) + np.array(case.cta.GetOrigin())
    m = np.array(tr.GetMatrix()).reshape(3, 3)
    c, t = np.array(tr.GetCenter()), np.array(tr.GetTranslation())
    ncct = sitk.GetArrayFromImage(case.ncct).astype(float)

    def sampled_error(q):
        idx = ((q - np.array(case.ncct.GetOrigin())) / np.array(case.ncct.GetSpacing()))[:, ::-1].T
        ok = np.all((idx >= 0) & (idx <= np.array(ncct.shape)[:, None] - 1), axis=0)
        vals = ndimage.map_coordinates(ncct, idx[:, ok], order=1)
        return float(np.mean(np.abs(vals - case.clean["ncct"][tuple(brain[ok].T)])))

    forward = sampled_error((p - c) @ m.T + c + t)
    assert forward < 0.5 * sampled_error(p) and forward < 0.5 * sampled_error((p - c - t) @ m + c)


def test_thick_slice_ncct():
    case = generate_case(6, "tiny", thick_slices=True)
    assert case.ncct.GetSpacing()[2] == pytest.approx(5.0) and case.truth["slice_thickness_mm"] == 5.0
    assert case.ncct_on_cta.GetSize() == case.cta.GetSize()
    assert case.ncct.GetSize()[2] == round(32 * 1.5 / 5.0)


def test_determinism_and_seed_sensitivity():
    a, b, c = generate_case(7, "tiny", n_raters=2), generate_case(7, "tiny", n_raters=2), generate_case(8, "tiny")
    for name in ("cta", "ncct", "ncct_on_cta", "label"):
        assert np.array_equal(sitk.GetArrayFromImage(getattr(a, name)), sitk.GetArrayFromImage(getattr(b, name)))
    for ra, rb in zip(a.rater_masks, b.rater_masks):
        assert np.array_equal(sitk.GetArrayFromImage(ra), sitk.GetArrayFromImage(rb))
    strip = lambda t: {k: v for k, v in t.items() if k != "generation_s"}  # noqa: E731
    assert strip(a.truth) == strip(b.truth)
    assert not np.array_equal(sitk.GetArrayFromImage(a.cta), sitk.GetArrayFromImage(c.cta))


def test_raters_plausible():
    case = generate_case(3, "tiny", site="ICA", n_raters=4)
    label = sitk.GetArrayFromImage(case.label) > 0
    dices = []
    for r in case.rater_masks:
        m = sitk.GetArrayFromImage(r) > 0
        dices.append(2 * (m & label).sum() / (m.sum() + label.sum()))
    assert len(dices) == 4 and min(dices) > 0.3 and max(dices) <= 1.0 and min(dices) < 1.0


def test_tiny_is_fast_and_bad_input_rejected():
    t = generate_case(9, "tiny").truth
    assert t["generation_s"] < 1.5 and t["shape"] == [32, 48, 40]
    with pytest.raises(ValueError, match="unknown overrides"):
        generate_case(0, "tiny", colour="red")
    with pytest.raises(ValueError, match="'PCA'"):
        generate_case(0, "tiny", site="PCA")
    with pytest.raises(ValueError, match="huge"):
        generate_case(0, "huge")
