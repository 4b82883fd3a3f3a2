"""Evaluation cohorts of fixed composition: test-part plans, small clots, calcified clot-free heads, metadata."""
from __future__ import annotations

import collections
import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_thrombus.synthetic.cohort import (SMALL_CLOT_TARGET_MM3, TEST_PROFILES, CohortSpec, check_composition,
                                              composition, plan_cohort, plan_test_part, size_class, write_cohort)
from nnunet_thrombus.synthetic.phantom import generate_case


def _counts(specs):
    sites = collections.Counter(s.site for s in specs)
    clots = [s for s in specs if s.site != "none"]
    return {"sites": dict(sorted(sites.items())), "isodense": sum(bool(s.isodense) for s in clots),
            "small": sum(s.small for s in clots), "small_sites": dict(collections.Counter(s.site for s in clots if s.small)),
            "iso_sites": dict(collections.Counter(s.site for s in clots if s.isodense)),
            "free_calcified": sum(s.site == "none" and bool(s.calcification) for s in specs),
            "free_plain": sum(s.site == "none" and s.calcification is False for s in specs)}


def test_benchmark_plan_40_exact_counts():
    c = _counts(plan_test_part(40, "benchmark"))
    assert c["sites"] == {"ACA": 7, "ICA": 6, "M1": 9, "M2": 8, "none": 10}
    assert c["isodense"] == 6 and c["iso_sites"] == {"ICA": 2, "M1": 2, "M2": 1, "ACA": 1}
    assert c["small"] == 8 and c["small_sites"] == {"M2": 4, "ACA": 4}
    assert c["free_calcified"] == 6 and c["free_plain"] == 4


@pytest.mark.parametrize("n", [60, 80, 97])
def test_evaluation_plan_meets_issue_minimums(n):
    specs = plan_test_part(n, "evaluation")
    c = _counts(specs)
    assert len(specs) == n and c["free_calcified"] >= 20 and c["free_plain"] >= 2
    assert c["sites"]["M2"] + c["sites"]["ACA"] >= 20 and min(c["sites"][s] for s in ("ICA", "M1")) >= 5
    assert c["isodense"] >= 20 and set(c["iso_sites"]) == {"ICA", "M1", "M2", "ACA"}
    assert c["small"] >= 20 and set(c["small_sites"]) == {"M2", "ACA"}


def test_plans_are_deterministic_and_only_shuffled_by_rng():
    a = plan_test_part(45, "benchmark", np.random.default_rng(1))
    b = plan_test_part(45, "benchmark", np.random.default_rng(1))
    c = plan_test_part(45, "benchmark", np.random.default_rng(2))
    assert a == b and a != c and sorted(map(repr, a)) == sorted(map(repr, c))
    full = plan_cohort(60, 40, seed=3, test_profile="benchmark")
    assert [s.split for s in full] == ["train"] * 20 + ["test"] * 40
    train_free = [s for s in full[:20] if s.site == "none"]
    assert train_free and sum(bool(s.calcification) for s in train_free) == (len(train_free) + 1) // 2


def test_bad_profile_and_too_small_evaluation_refused():
    with pytest.raises(ValueError, match="at least 60"):
        plan_test_part(59, "evaluation")
    with pytest.raises(ValueError, match="unknown test profile"):
        plan_test_part(40, "mimics")
    assert TEST_PROFILES["benchmark"].min_test == 40


@pytest.mark.parametrize("preset,site,seed", [("tiny", "M2", 11), ("demo", "ACA", 12), ("demo", "M2", 13)])
def test_small_clot_mask_under_target(preset, site, seed):
    case = generate_case(seed, preset, site=site, max_clot_volume_mm3=SMALL_CLOT_TARGET_MM3)
    label = sitk.GetArrayFromImage(case.label) > 0
    vol = label.sum() * np.prod(case.label.GetSpacing())
    assert 0 < vol < SMALL_CLOT_TARGET_MM3 and vol == pytest.approx(case.truth["label_volume_mm3"])
    assert case.truth["length_mm"] >= 1.5 and case.truth["max_clot_volume_mm3"] == SMALL_CLOT_TARGET_MM3
    # the shortening keeps the rest of the patient: same start and HU as the unconstrained clot
    free = generate_case(seed, preset, site=site)
    assert free.truth["ncct_density_hu"] == case.truth["ncct_density_hu"]
    assert free.truth["label_volume_mm3"] >= case.truth["label_volume_mm3"]


def test_small_icas_at_demo_calibre_refused_with_reason():
    with pytest.raises(ValueError, match="ICA clot cannot be made smaller than 5"):
        generate_case(1, "demo", site="ICA", max_clot_volume_mm3=5.0)


@pytest.fixture(scope="module")
def calcified_pair():
    kw = dict(site="none", noise=False, blur=False, streaks=False)
    return generate_case(21, "demo", calcification=True, **kw), generate_case(21, "demo", calcification=False, **kw)


def test_clot_free_calcified_head_differs_only_at_the_calcium(calcified_pair):
    calc, plain = calcified_pair
    t = calc.truth
    assert not t["occluded"] and t["site"] == "none" and not sitk.GetArrayFromImage(calc.label).any()
    assert 1 <= len(t["calcifications"]) <= 4 and {c["kind"] for c in t["calcifications"]} <= {"wall", "plaque"}
    diff = np.abs(calc.clean["ncct"] - plain.clean["ncct"]) > 1e-3
    assert diff.any()
    # every changed voxel lies within radius + one voxel of a recorded calcification ball
    sp = np.array(calc.cta.GetSpacing())
    pts = np.argwhere(diff)[:, ::-1] * sp + np.array(calc.cta.GetOrigin())
    centres = np.array([c["centre_mm"] for c in t["calcifications"]])
    reach = max(c["radius_mm"] + c["extent_mm"] / 2 + 0.6 * c["radius_mm"] for c in t["calcifications"]) + sp.max()
    assert np.linalg.norm(pts[:, None] - centres[None], axis=2).min(axis=1).max() <= reach + 2.0
    # CTA of the arteries outside the calcium is unchanged: no occlusion, no reduced flow downstream
    lumen = (sitk.GetArrayFromImage(calc.artery_mask) > 0) & ~diff
    assert np.array_equal(calc.clean["cta"][lumen], plain.clean["cta"][lumen])


def test_calcifications_bright_inside_brain_on_blurred_noisy_ncct():
    peaks = []
    for seed in range(4):
        case = generate_case(seed, "demo", site="none", calcification=True)
        ncct = sitk.GetArrayFromImage(case.ncct_on_cta).astype(float)
        brain = sitk.GetArrayFromImage(case.brain_mask) > 0
        for c in case.truth["calcifications"]:
            idx = np.array(case.cta.TransformPhysicalPointToIndex(c["centre_mm"]))[::-1]
            assert brain[tuple(idx)], c
            box = ncct[tuple(slice(max(i - 1, 0), i + 2) for i in idx)]
            peaks.append(box.max())
    assert len(peaks) >= 6 and min(peaks) >= 130 and np.median(peaks) >= 180


def test_calcification_keeps_clear_of_the_clot():
    for seed in range(6):
        case = generate_case(seed, "tiny", site="M1", calcification=True, noise=False, blur=False)
        label = np.argwhere(sitk.GetArrayFromImage(case.label) > 0)[:, ::-1] * np.array(case.cta.GetSpacing()) \
            + np.array(case.cta.GetOrigin())
        for c in case.truth["calcifications"]:
            assert np.linalg.norm(label - np.array(c["centre_mm"]), axis=1).min() > c["radius_mm"] + 1.0


def test_size_class_boundaries():
    assert [size_class(v, True) for v in (0.0, 29.99, 30.0, 39.99, 40.0)] == ["<30", "<30", "30-40", "30-40", ">=40"]
    assert size_class(0.0, False) == "none"


def test_benchmark_cohort_written_with_guaranteed_test_part(tmp_path):
    s = write_cohort(tmp_path, CohortSpec(42, seed=5, preset="tiny", n_test=40, test_profile="benchmark"),
                     formats=("nifti",), progress=False)
    ds = tmp_path / "nnUNet_raw" / "Dataset501_SynthThrombus"
    rows = list(csv.DictReader(open(ds / "metadata.csv")))
    test = [r for r in rows if r["split"] == "test"]
    assert len(test) == 40 and s["composition_missing"] == []
    comp = composition(rows, "test")
    assert comp == s["test_composition"]
    assert comp["clots"] == 30 and comp["clot_free"] == 10 and comp["clot_free_calcified"] == 6
    assert comp["sites"] == {"ICA": 6, "M1": 9, "M2": 8, "ACA": 7} and comp["isodense"] == 6
    assert comp["under_30_mm3"] >= 8
    for r in test:
        lab = sitk.GetArrayFromImage(sitk.ReadImage(str(ds / "labelsTs" / f"{r['case']}.nii.gz"))) > 0
        vol = lab.sum() * 1.5 ** 3
        assert float(r["label_volume_mm3"]) == pytest.approx(vol, abs=0.01)
        assert r["size_class"] == size_class(vol, lab.any())
        if "small" in r["stratum"]:
            assert vol < 30.0
        assert int(r["clot_free_calcified"]) == (r["site"] == "none" and int(r["n_calcifications"]) > 0)
        if r["calcifications"]:
            calcs = json.loads(r["calcifications"])
            assert len(calcs) == int(r["n_calcifications"]) and all(len(c["centre_mm"]) == 3 for c in calcs)
    truth = json.loads((tmp_path / "raw_nifti" / test[0]["case"] / "truth.json").read_text())
    assert truth["site"] == test[0]["site"] and "cta_density_hu" in truth and "calcifications" in truth
    assert check_composition(dict(comp, clots=29), "benchmark") == ["clots 29 < 30"]
