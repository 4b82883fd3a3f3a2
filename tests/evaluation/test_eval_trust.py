"""Trust metrics of evaluate: AUROC, Spearman, review sensitivity/specificity, false positives per clot-free head,
subgroups and the benchmark's evidence columns, each against an independent count on small fixed inputs."""
from __future__ import annotations

import csv
import itertools
import json
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.stats import spearmanr

from nnunet_thrombus.evaluation.evaluate import EvaluationOptions, evaluate_folder, evidence_columns
from nnunet_thrombus.evaluation.summary import auroc, false_positives, summarise, trust_summary


def _brute_auroc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auroc_equals_the_pair_count_with_ties():
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 5, 40).astype(float)        # many ties
    labels = rng.random(40) < 0.4
    assert auroc(scores, labels)["auroc"] == pytest.approx(_brute_auroc(scores, labels), abs=1e-12)
    assert auroc([0.1, 0.9], [False, True])["auroc"] == 1.0
    assert auroc([0.9, 0.1], [False, True])["auroc"] == 0.0
    assert np.isnan(auroc([0.1, 0.2], [True, True])["auroc"])


def test_auroc_interval_matches_hanley_mcneil_and_its_limits():
    rng = np.random.default_rng(3)
    pos, neg = rng.normal(1.0, 1.0, 60), rng.normal(0.0, 1.0, 60)
    scores, labels = np.concatenate([pos, neg]), np.arange(120) < 60
    a = auroc(scores, labels)
    # an independent interval: Hanley & McNeil's standard error of the AUROC, normal approximation
    q1, q2 = a["auroc"] / (2 - a["auroc"]), 2 * a["auroc"] ** 2 / (1 + a["auroc"])
    se = np.sqrt((a["auroc"] * (1 - a["auroc"]) + 59 * (q1 - a["auroc"] ** 2) + 59 * (q2 - a["auroc"] ** 2)) / 3600)
    assert a["ci"][0] == pytest.approx(a["auroc"] - 1.96 * se, abs=0.02)
    assert a["ci"][1] == pytest.approx(a["auroc"] + 1.96 * se, abs=0.02)
    assert a["ci"][0] < a["auroc"] < a["ci"][1] and auroc(scores, labels)["ci"] == a["ci"]  # seeded: reproducible
    assert auroc([0.1, 0.2, 0.8, 0.9], [False, False, True, True])["ci"] == [1.0, 1.0]  # every resample separates
    assert auroc([0.5] * 4, [False, True, False, True])["ci"] == [0.5, 0.5]              # all ties
    assert np.isnan(auroc([0.1, 0.2], [True, True])["ci"]).all()


def _row(dice, ref, pred, unc, review, site="M1", dropped=False):
    from nnunet_thrombus.calibration.review import is_bad

    from nnunet_thrombus.evaluation.summary import MEASURES, SEG_METRICS

    return {**dict.fromkeys(SEG_METRICS + MEASURES, 1.0), "dice": dice, "ref_present": ref, "pred_present": pred,
            "uncertainty": unc, "review": review,
            "bad": is_bad(dice, ref, pred), "dropped_on_reference": dropped, "site": site,
            "ref_lvo": site in ("ICA", "M1") and ref, "pred_lvo": pred and site in ("ICA", "M1")}


ROWS = [_row(0.9, True, True, 0.10, False), _row(0.8, True, True, 0.30, False, "M2"),
        _row(0.4, True, True, 0.50, True, "ACA"), _row(0.0, True, False, 0.70, True, "M2"),
        _row(0.7, True, True, 0.60, True, "M2"), _row(1.0, False, False, 0.05, False, "none"),
        _row(0.0, False, True, 0.20, False, "none", dropped=True), _row(1.0, False, False, 0.90, True, "none")]


def test_trust_summary_exact():
    t = trust_summary(ROWS)
    seg = [r for r in ROWS if r["ref_present"]]
    rho = spearmanr([r["uncertainty"] for r in seg], [r["dice"] for r in seg])
    assert t["spearman_vs_dice"]["r"] == pytest.approx(rho.statistic) and t["spearman_vs_dice"]["n"] == 5
    # poor (Dice < 0.6): 0.50, 0.70; good: 0.10, 0.30, 0.60 -> 5 of 6 pairs ordered
    assert t["auroc_poor_dice"]["auroc"] == pytest.approx(5 / 6)
    # bad: Dice 0.4, the miss, the false call -> review catches 2 of 3; good: 5 cases, 2 flagged
    assert (t["review"]["tp"], t["review"]["fn"], t["review"]["fp"], t["review"]["tn"]) == (2, 1, 2, 3)
    assert t["review"]["sensitivity"] == pytest.approx(2 / 3) and t["review"]["specificity"] == pytest.approx(3 / 5)
    assert t["n_review"] == 4 and t["dropped_on_reference"] == 1
    assert trust_summary([dict(r, uncertainty=None) for r in ROWS]) is None


def test_false_positives_and_subgroups():
    assert false_positives(ROWS) == {"calls": 1, "clot_free_heads": 3, "per_clot_free_head": pytest.approx(1 / 3)}
    s = summarise(ROWS)
    m2 = s["subgroups"]["site"]["M2"]
    assert m2["n"] == 3 and (m2["detection"]["tp"], m2["detection"]["fn"]) == (2, 1)
    assert s["subgroups"]["site"]["none"]["false_positives"]["calls"] == 1
    cols = evidence_columns(s)
    assert cols["m2_aca_detection"] == pytest.approx(3 / 4)              # M2 2 of 3, ACA 1 of 1
    assert cols["clot_free_specificity"] == pytest.approx(2 / 3)
    assert cols["fp_calls_per_clot_free_head"] == pytest.approx(1 / 3)
    assert cols["review_sensitivity"] == pytest.approx(2 / 3) and cols["dropped_on_reference"] == 1.0
    assert cols["uncertainty_auroc_poor_dice"] == pytest.approx(5 / 6)
    # each figure's 95% CI beside it: Wilson for the proportions (3 of 4: 0.301-0.954), bootstrap for the AUROC
    assert (cols["m2_aca_detection_ci_low"], cols["m2_aca_detection_ci_high"]) == pytest.approx((0.3006, 0.9544),
                                                                                                abs=1e-4)
    assert (cols["review_sensitivity_ci_low"], cols["review_sensitivity_ci_high"]) == pytest.approx(
        s["trust"]["review"]["sensitivity_ci"])
    assert cols["uncertainty_auroc_poor_dice_ci_low"] < 5 / 6 <= cols["uncertainty_auroc_poor_dice_ci_high"] <= 1.0


def _write(arr, path):
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(img, str(path))


def _folders(tmp_path):
    """(pred, ref, reports) folders under tmp_path (the first two created), a (10, 20, 30) shape and a 54-voxel clot."""
    pred, ref, reports = tmp_path / "pred", tmp_path / "ref", tmp_path / "reports"
    for d in (pred, ref):
        d.mkdir()
    shape = (10, 20, 30)
    clot = np.zeros(shape, bool)
    clot[3:6, 8:11, 20:26] = True
    return pred, ref, reports, shape, clot


def test_evaluate_folder_reads_reports(tmp_path):
    pred, ref, reports, shape, clot = _folders(tmp_path)
    cases = {"A": (clot, clot, 0.1, False, []), "B": (clot, np.zeros(shape, bool), 0.8, True,
                                                    [{"bbox": [3, 8, 20, 6, 11, 26]}]),
             "C": (np.zeros(shape, bool), clot, 0.3, False, [])}
    for name, (r, p, unc, review, dropped) in cases.items():
        _write(r, ref / f"{name}.nii.gz")
        _write(p, pred / f"{name}.nii.gz")
        (reports / name).mkdir(parents=True)
        (reports / name / "report.json").write_text(json.dumps({
            "uncertainty": {"score": unc, "kind": "clot"}, "review": {"review": review},
            "dropped_components": dropped}))
    meta = tmp_path / "metadata.csv"
    meta.write_text("case,site,size_class,clot_free_calcified\nA,M2,<30,0\nB,M2,<30,0\nC,none,none,1\n")
    s = evaluate_folder(pred, ref, tmp_path / "out", EvaluationOptions(metadata_csv=meta, reports_dir=reports,
                                                                        plots=False), quiet=True)
    rows = {r["case"]: r for r in csv.DictReader(open(tmp_path / "out" / "metrics.csv"))}
    assert rows["B"]["dropped_on_reference"] == "True" and rows["B"]["review"] == "True"
    assert rows["C"]["fp_call"] == "True" and rows["C"]["clot_free_calcified"] == "yes"
    assert s["false_positives"] == {"calls": 1, "clot_free_heads": 1, "per_clot_free_head": 1.0}
    assert s["subgroups"]["clot_free_calcified"]["yes"]["false_positives"]["calls"] == 1
    assert (s["trust"]["review"]["tp"], s["trust"]["review"]["fn"], s["trust"]["review"]["tn"]) == (1, 1, 1)
    assert s["trust"]["auroc_poor_dice"]["auroc"] == 1.0                 # B (miss, 0.8) above A (perfect, 0.1)
    assert "Uncertainty and review" in (tmp_path / "out" / "summary.md").read_text()
    (reports / "C" / "report.json").unlink()
    with pytest.raises(ValueError, match=r"no report.json .* \['C'\]"):
        evaluate_folder(pred, ref, tmp_path / "out2", EvaluationOptions(reports_dir=reports, plots=False), quiet=True)


def test_calls_from_reports_replace_the_remeasured_call(tmp_path):
    """Same masks, two scorings: re-measured from the mask (a clot at the image's far left-front reads as some
    site under the built-in rule) and the report's own call (what predict told the reader)."""
    pred, ref, reports, shape, clot = _folders(tmp_path)
    calls = {"A": ("LVO", "M1", True), "B": ("non-LVO occlusion", "M2", True), "C": ("no occlusion", None, False)}
    for name, (call, site, has_clot) in calls.items():
        _write(clot if has_clot else np.zeros(shape, bool), ref / f"{name}.nii.gz")
        _write(clot if has_clot else np.zeros(shape, bool), pred / f"{name}.nii.gz")
        comps = [{"site": site, "volume_mm3": 54.0, "kept": True}, {"site": "ICA", "volume_mm3": 9.0, "kept": True},
                 {"site": "ICA", "volume_mm3": 99.0, "kept": False}] if site else []
        (reports / name).mkdir(parents=True)
        (reports / name / "report.json").write_text(json.dumps({
            "uncertainty": {"score": 0.1, "kind": "clot"}, "review": {"review": False}, "dropped_components": [],
            "components": comps, "call": {"call": call}}))
    meta = tmp_path / "metadata.csv"
    meta.write_text("case,site,lvo\nA,M1,1\nB,M2,0\nC,none,0\n")
    options = EvaluationOptions(metadata_csv=meta, reports_dir=reports, plots=False)
    masks = evaluate_folder(pred, ref, tmp_path / "m", options, quiet=True)
    by_report = evaluate_folder(pred, ref, tmp_path / "r", replace(options, calls_from_reports=True), quiet=True)
    rows_m = {r["case"]: r for r in csv.DictReader(open(tmp_path / "m" / "metrics.csv"))}
    rows_r = {r["case"]: r for r in csv.DictReader(open(tmp_path / "r" / "metrics.csv"))}
    # A and B have the same mask, so re-measuring gives them one site and one call
    assert rows_m["A"]["pred_site"] == rows_m["B"]["pred_site"] and rows_m["A"]["pred_call"] == rows_m["B"]["pred_call"]
    assert [rows_r[c]["pred_call"] for c in "ABC"] == ["LVO", "non-LVO occlusion", "no occlusion"]
    assert [rows_r[c]["pred_site"] for c in "ABC"] == ["M1", "M2", "none"]  # largest kept component
    assert [rows_r[c]["lvo_outcome"] for c in "ABC"] == ["TP", "TN", "TN"]
    assert by_report["calls"] == "report.json" and masks["calls"] == "re-measured from the masks"
    with pytest.raises(ValueError, match="needs reports_dir"):
        evaluate_folder(pred, ref, tmp_path / "x", EvaluationOptions(calls_from_reports=True, plots=False), quiet=True)
