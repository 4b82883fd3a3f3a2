"""report.json carries uncertainty, review and every component's keep/drop reason; summary.csv and the overlay
title show the review flag."""
from __future__ import annotations

import numpy as np
import pytest

from nnunet_thrombus.inference.json_schema import schema_errors
from nnunet_thrombus.inference.overlay import overlay_text, render_overlay
from nnunet_thrombus.calibration.postprocessing import Postprocessing
from nnunet_thrombus.inference.report import CaseFindings, build_report, report_schema, summary_row
from nnunet_thrombus.calibration.review import ReviewRule, case_uncertainty
from nnunet_thrombus.calibration.lvo import LVOThresholds

GEO = {"size_xyz": [40, 30, 30], "spacing_xyz_mm": [1.0, 1.0, 1.0], "origin_xyz_mm": [0.0, 0.0, 0.0],
       "direction": [1, 0, 0, 0, 1, 0, 0, 0, 1]}


def _case():
    shape = (30, 30, 40)
    cta, ncct = np.full(shape, 40.0), np.full(shape, 35.0)
    cta[9:12, 9:12, :] = 300.0
    seg = np.zeros(shape, np.uint8)
    seg[9:12, 9:12, 4:8] = 1
    cta[seg > 0], ncct[seg > 0] = 70.0, 60.0
    seg[12:14, 9:12, 30:33] = 1                      # plaque: NCCT 180
    cta[12:14, 9:12, 30:33], ncct[12:14, 9:12, 30:33] = 350.0, 180.0
    prob = np.where(seg > 0, 0.75, 0.02).astype(np.float32)
    return seg, prob, ncct, cta


def test_report_has_reasons_uncertainty_and_review():
    seg, prob, ncct, cta = _case()
    sel = Postprocessing().select(seg, (1, 1, 1), probability=prob, ncct=ncct, cta=cta)
    unc = case_uncertainty(prob, sel["mask"])
    rule = ReviewRule(clot_score=0.5)
    review = dict(rule.review(unc, sel["flags"]), rule=rule.to_dict(), source="default")
    findings = CaseFindings(mask=sel["mask"], probability=prob, components=sel["kept"], folds=("0",),
                            dropped=sel["dropped"], uncertainty=unc, review=review,
                            postprocessing={"rule": Postprocessing().to_dict(), "source": "default",
                                            "flags": sel["flags"]})
    report = build_report("C1", findings,
                          input_info={"source": "nifti", "cta_geometry": GEO, "grid_geometry": GEO,
                                      "slice_thickness_mm": {"cta": 1.0, "ncct": 1.0}, "thick_slices_resampled": False,
                                      "preprocessed_input": True},
                          registration_qc={}, model_info={"model": "m", "tta": False, "roi_restrict": True},
                          rule=LVOThresholds(), rule_source="default", warnings=[],
                          timings_s={k: 0.0 for k in ("preprocess", "coarse", "fine", "export")})
    import json

    report = json.loads(json.dumps(report))          # what report.json holds
    assert schema_errors(report, report_schema()) == []
    assert report["n_components"] == 1 and report["components"][0]["reason"].startswith("thrombus: 36.0 mm3")
    assert report["dropped_components"][0]["reason"].startswith("calcification, not thrombus")
    h = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))
    assert report["uncertainty"]["score"] == pytest.approx(h) and report["review"]["review"] is True   # 0.81 >= 0.5
    row = summary_row(report)
    assert row["review"] == 1 and row["uncertainty_bits"] == pytest.approx(round(h, 3)) and row["n_dropped"] == 1
    title = overlay_text(report)
    assert title.startswith("REVIEW - C1: ") and "uncertainty 0.81 bits" in title and "1 component(s) dropped" in title
    fig = render_overlay(cta, ncct, sel["mask"], (1, 1, 1), report, dropped=(seg > 0) & (sel["mask"] == 0))
    assert fig.axes[0].collections                  # contours drawn
    # a report without review reads as not flagged
    quiet = dict(report, review=dict(report["review"], review=False, reasons=[]))
    assert not overlay_text(quiet).startswith("REVIEW") and summary_row(quiet)["review"] == 0
