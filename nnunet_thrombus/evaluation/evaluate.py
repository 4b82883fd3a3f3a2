"""Evaluate a folder of predicted thrombus masks against reference masks.

``evaluate_folder`` matches files by name (nnU-Net naming ``<case>.nii.gz``), computes per case the
segmentation metrics of ``surface_metrics`` (DESIGN.md sec 5), volume and length of reference and
prediction with their errors, and the detection outcome of thrombus presence and of LVO; it writes
``metrics.csv``, ``summary.json``, ``summary.md`` and PNG plots, each atomically.

Multi-component handling: Dice, HD95, ASSD, NSD and volume use all thrombus voxels (label > 0) of
each mask together; length is that of the largest 26-connected component; the predicted call
(``calibration.lvo.lvo_call``) ignores components below the rule's minimum volume and decides on the
largest remaining one.

Truth: occlusion present = reference mask non-empty; LVO = metadata column ``lvo`` when a metadata
CSV is given, otherwise the LVO rule applied to the reference mask. Subgroups: ``site`` and
``isodense`` from metadata; size group (<30 mm^3 vs >=30 mm^3) from the reference volume; ``size_class`` and
``clot_free_calcified`` from metadata when it has them (the synthetic cohort writes both).

Trust, when ``reports_dir`` (``predict``'s output folder, ``<case>/report.json``) is given: each case's
uncertainty score (bits), ``review`` flag, components dropped by post-processing, and whether a dropped component's
bounding box holds reference voxels (``dropped_on_reference``: the post-processing may have removed the clot). The
summary then has Spearman rho between uncertainty and Dice, the AUROC of the uncertainty for Dice < 0.6, and the
review flag's sensitivity and specificity for bad cases (``calibration.review.is_bad``: Dice < 0.6, a miss, a
false-positive call or a wrong LVO call); false-positive calls per clot-free
head are always reported. :func:`evidence_columns` gives these as one flat dict per evaluated model (for the
benchmark table).
"""
from __future__ import annotations

import csv
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_thrombus.atomic_io import write_csv, write_json, write_text
from nnunet_thrombus.calibration.lvo import LVOThresholds, lvo_call, refine_sites
from nnunet_thrombus.calibration.review import is_bad
from nnunet_thrombus.evaluation import plots as p
from nnunet_thrombus.evaluation.raters import rater_study
from nnunet_thrombus.evaluation.statistics import wilson_ci
from nnunet_thrombus.evaluation.summary import summarise, to_markdown
from nnunet_thrombus.evaluation.surface_metrics import all_metrics
from nnunet_thrombus.measure.components import measure_components
from nnunet_thrombus.measure.length import length_mm

logger = logging.getLogger(__name__)

SUFFIX = ".nii.gz"
SMALL_CLOT_MM3 = 30.0
FIELDS = ["case", "dice", "hd95_mm", "assd_mm", "nsd_1mm", "ref_volume_mm3", "pred_volume_mm3", "volume_error_mm3",
          "abs_volume_error_mm3", "rel_volume_error", "ref_length_mm", "pred_length_mm", "length_error_mm",
          "abs_length_error_mm", "rel_length_error", "ref_components", "pred_components", "ref_present",
          "pred_present", "presence_outcome", "ref_lvo", "pred_lvo", "lvo_outcome", "pred_call", "pred_site",
          "site", "size_group", "density_group", "size_class", "clot_free_calcified", "fp_call", "bad", "uncertainty",
          "uncertainty_kind", "review", "n_dropped", "dropped_on_reference"]


def _truthy(value) -> bool:
    s = str(value).strip().lower()
    if s in ("1", "true", "yes", "y", "t", "1.0"):
        return True
    if s in ("0", "false", "no", "n", "f", "0.0", "", "none", "nan"):
        return False
    raise ValueError(f"cannot read {value!r} as a boolean")


def read_metadata(path) -> dict:
    """metadata.csv -> {case: row dict}; needs a ``case`` column (or ``case_id``, as the converter writes)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        names = reader.fieldnames or []
        key = "case" if "case" in names else "case_id" if "case_id" in names else None
        if key is None:
            raise ValueError(f"metadata {path} needs a 'case' (or 'case_id') column, got columns {reader.fieldnames}")
        return {row[key]: dict(row, case=row[key]) for row in reader}


def check_geometry(case: str, pred, ref, tol: float = 1e-3) -> None:
    """Raise ValueError naming ``case`` when two SimpleITK images differ in size, spacing, origin or
    direction (absolute tolerance ``tol`` mm / cosine)."""
    if pred.GetSize() != ref.GetSize():
        raise ValueError(f"case {case}: prediction size {pred.GetSize()} != reference size {ref.GetSize()}")
    for name in ("Spacing", "Origin", "Direction"):
        a, b = getattr(pred, f"Get{name}")(), getattr(ref, f"Get{name}")()
        if not np.allclose(a, b, atol=tol, rtol=0):
            raise ValueError(f"case {case}: prediction {name.lower()} {tuple(np.round(a, 4))} != reference "
                             f"{name.lower()} {tuple(np.round(b, 4))}")


def _cases(pred_dir, ref_dir) -> list[str]:
    refs = sorted(f[: -len(SUFFIX)] for f in os.listdir(ref_dir) if f.endswith(SUFFIX) and not f.startswith("."))
    if not refs:
        raise ValueError(f"no reference masks (*{SUFFIX}) in {ref_dir}")
    missing = [c for c in refs if not os.path.isfile(os.path.join(pred_dir, c + SUFFIX))]
    if missing:
        raise ValueError(f"no prediction in {pred_dir} for reference case(s) {missing}")
    return refs


def _outcome(truth: bool, pred: bool) -> str:
    return "TP" if truth and pred else "FN" if truth else "FP" if pred else "TN"


def read_reports(reports_dir) -> dict:
    """{case: report dict} from ``predict``'s output folder (``<case>/report.json``; partial cases skipped)."""
    out = {}
    for path in sorted(Path(reports_dir).glob("*/report.json")):
        if not path.parent.name.startswith("."):
            out[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
    return out


def trust_fields(report: dict | None, ref: np.ndarray, dice_value: float, ref_present: bool,
                 pred_present: bool, lvo_wrong: bool = False) -> dict:
    """Per-case trust columns from a ``report.json`` (None: uncertainty, review and drops unknown). ``ref``: the
    reference mask (z, y, x) on the report's grid; ``lvo_wrong``: the LVO call disagrees with the reference (a bad
    case for the review flag, as ``fit-lvo`` counts it)."""
    row = {"fp_call": bool(pred_present and not ref_present),
           "bad": is_bad(dice_value, ref_present, pred_present, lvo_wrong),
           "uncertainty": None, "uncertainty_kind": None, "review": None, "n_dropped": None,
           "dropped_on_reference": None}
    if report is None:
        return row
    unc, dropped = report.get("uncertainty") or {}, report.get("dropped_components") or []
    on_ref = False
    for comp in dropped:
        z0, y0, x0, z1, y1, x1 = comp["bbox"]
        on_ref = on_ref or bool(ref[z0:z1, y0:y1, x0:x1].any())
    row.update(uncertainty=unc.get("score"), uncertainty_kind=unc.get("kind"),
               review=bool((report.get("review") or {}).get("review")), n_dropped=len(dropped),
               dropped_on_reference=on_ref)
    return row


def report_call(report: dict) -> tuple[dict, str]:
    """The occlusion call ``predict`` reported (``report.json``'s ``call``, made with its skull-stripped brain as the
    site frame and the model's fitted LVO rule) and the site of its largest kept component ("none" without one)."""
    call = report.get("call")
    if not isinstance(call, dict) or "call" not in call:
        raise ValueError(f"report.json of {report.get('case_id', '?')} has no call; it predates the report schema")
    kept = [c for c in report.get("components", []) if c.get("kept", True)]
    site = max(kept, key=lambda c: c.get("volume_mm3", 0.0))["site"] if kept else "none"
    return call, site


def evaluate_case(case, pred_img, ref_img, meta=None, brain_img=None, lvo_rule=None, tolerance_mm=1.0,
                  report=None, call_from_report: bool = False) -> dict:
    """One row of metrics.csv from SimpleITK label images (prediction, reference) of one case; ``report``: the
    case's ``report.json`` from ``predict`` (optional, for the trust columns). ``call_from_report``: the
    predicted call and site are the report's own (:func:`report_call`) instead of ones re-measured here from the
    mask (image extent or ``brain_img`` as the site frame, ``lvo_rule``)."""
    check_geometry(case, pred_img, ref_img)
    rule = lvo_rule or LVOThresholds()
    pred = sitk.GetArrayFromImage(pred_img) > 0
    ref = sitk.GetArrayFromImage(ref_img) > 0
    brain = None if brain_img is None else sitk.GetArrayFromImage(brain_img) > 0
    spacing = ref_img.GetSpacing()[::-1]
    m = all_metrics(pred, ref, spacing, tolerance_mm)
    geo = dict(spacing=spacing, origin=ref_img.GetOrigin(), direction=ref_img.GetDirection())
    pred_comps = refine_sites(measure_components(pred, brain_mask=brain, **geo), rule)  # as build_report shows them
    ref_comps = measure_components(ref, brain_mask=brain, **geo)
    voxel = float(np.prod(spacing))
    rv, pv = float(ref.sum()) * voxel, float(pred.sum()) * voxel
    rl = length_mm(ref, spacing) if rv else 0.0
    pl = length_mm(pred, spacing) if pv else 0.0
    if call_from_report:
        if report is None:
            raise ValueError(f"{case}: call_from_report needs the case's report.json")
        call, pred_site = report_call(report)
    else:
        call, pred_site = lvo_call(pred_comps, rule), pred_comps[0]["site"] if pred_comps else "none"
    meta = meta or {}
    ref_lvo = _truthy(meta["lvo"]) if "lvo" in meta else lvo_call(ref_comps, rule)["call"] == "LVO"
    ref_present, pred_present, pred_lvo = bool(ref.any()), call["call"] != "no occlusion", call["call"] == "LVO"
    density = None
    if rv and meta.get("isodense", "") != "":
        density = "isodense" if _truthy(meta["isodense"]) else "hyperdense"
    size_class = meta.get("size_class") or None
    calcified = meta.get("clot_free_calcified", "")
    return {
        **trust_fields(report, ref, m["dice"], ref_present, pred_present, ref_lvo != pred_lvo),
        "size_class": size_class,
        "clot_free_calcified": None if calcified in ("", None) else ("yes" if _truthy(calcified) else "no"),
        "case": case, "dice": m["dice"], "hd95_mm": m["hd95_mm"], "assd_mm": m["assd_mm"], "nsd_1mm": m["nsd"],
        "ref_volume_mm3": rv, "pred_volume_mm3": pv, "volume_error_mm3": pv - rv, "abs_volume_error_mm3": abs(pv - rv),
        "rel_volume_error": abs(pv - rv) / rv if rv else float("nan"),
        "ref_length_mm": rl, "pred_length_mm": pl, "length_error_mm": pl - rl, "abs_length_error_mm": abs(pl - rl),
        "rel_length_error": abs(pl - rl) / rl if rl else float("nan"),
        "ref_components": len(ref_comps), "pred_components": len(pred_comps),
        "ref_present": ref_present, "pred_present": pred_present,
        "presence_outcome": _outcome(ref_present, pred_present),
        "ref_lvo": ref_lvo, "pred_lvo": pred_lvo,
        "lvo_outcome": _outcome(ref_lvo, pred_lvo), "pred_call": call["call"],
        "pred_site": pred_site,
        "site": meta.get("site") or None,
        "size_group": (f"<{SMALL_CLOT_MM3:g} mm3" if rv < SMALL_CLOT_MM3 else f">={SMALL_CLOT_MM3:g} mm3") if rv else None,
        "density_group": density,
    }


@dataclass(frozen=True)
class EvaluationOptions:
    """What :func:`evaluate_folder` reads beside the masks, and how it scores.

    Attributes:
        metadata_csv: metadata.csv (columns case, site, lvo, isodense, ...) for the subgroups.
        raters_dir: ``DIR/<case>/rater_*.nii.gz`` for the STAPLE rater study.
        brain_mask_dir: ``<case>.nii.gz`` brain masks for the site frame (else the image extent).
        reports_dir: a ``predict`` output folder (``<case>/report.json``) for the uncertainty, review and
            post-processing columns; a case without a report is an error naming it.
        lvo_thresholds: ``LVOThresholds`` or a path to its JSON (None: the default thresholds).
        tolerance_mm: NSD tolerance in mm.
        calls_from_reports: score occlusion presence, LVO and site by the calls in those reports (what a reader of
            ``report.json`` sees) instead of re-measuring them from the masks with ``lvo_thresholds`` and the image
            extent as the site frame (the same rule for every model, as the benchmark compares them).
        plots: write the PNG plots.
    """

    metadata_csv: str | os.PathLike | None = None
    raters_dir: str | os.PathLike | None = None
    brain_mask_dir: str | os.PathLike | None = None
    reports_dir: str | os.PathLike | None = None
    lvo_thresholds: LVOThresholds | str | os.PathLike | None = None
    tolerance_mm: float = 1.0
    calls_from_reports: bool = False
    plots: bool = True


def evaluate_folder(pred_dir, ref_dir, out_dir, options: EvaluationOptions | None = None,
                    quiet: bool = False) -> dict:
    """Evaluate ``pred_dir/<case>.nii.gz`` (label > 0 = thrombus) against ``ref_dir/<case>.nii.gz`` for every
    reference case; every reference needs a prediction (else ValueError listing the cases); predictions without a
    reference are ignored and listed in the summary. Writes metrics.csv, summary.json, summary.md and the PNG plots
    into ``out_dir`` (created); returns the summary dict."""
    o = EvaluationOptions() if options is None else options
    start = time.perf_counter()
    for name, d in (("pred_dir", pred_dir), ("ref_dir", ref_dir)):
        if not os.path.isdir(d):
            raise ValueError(f"{name} {d} is not a folder")
    rule = o.lvo_thresholds
    if isinstance(rule, (str, os.PathLike)):
        rule = LVOThresholds.load(rule)
    cases = _cases(pred_dir, ref_dir)
    meta = read_metadata(o.metadata_csv) if o.metadata_csv else {}
    reports = read_reports(o.reports_dir) if o.reports_dir else None
    if o.calls_from_reports and reports is None:
        raise ValueError("calls_from_reports needs reports_dir (the folder predict wrote)")
    if reports is not None:
        missing = [c for c in cases if c not in reports]
        if missing:
            raise ValueError(f"no report.json under {o.reports_dir} for case(s) {missing}: pass the folder predict "
                             f"wrote (OUT/<case>/report.json) or leave out --reports")
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for i, case in enumerate(cases, start=1):
        brain = None
        if o.brain_mask_dir is not None and os.path.isfile(os.path.join(o.brain_mask_dir, case + SUFFIX)):
            brain = sitk.ReadImage(os.path.join(o.brain_mask_dir, case + SUFFIX))
        rows.append(evaluate_case(case, sitk.ReadImage(os.path.join(pred_dir, case + SUFFIX)),
                                  sitk.ReadImage(os.path.join(ref_dir, case + SUFFIX)), meta.get(case), brain,
                                  rule, o.tolerance_mm, None if reports is None else reports[case],
                                  o.calls_from_reports))
        r = rows[-1]
        logger.log(logging.DEBUG if quiet else logging.INFO,
                   f"[{i}/{len(cases)}] {case}: Dice {r['dice']:.3f}, call {r['pred_call']}")
    summary = summarise(rows)
    summary["lvo_rule"] = (rule or LVOThresholds()).to_dict()
    summary["calls"] = "report.json" if o.calls_from_reports else "re-measured from the masks"
    summary["unmatched_predictions"] = sorted(
        f[: -len(SUFFIX)] for f in os.listdir(pred_dir) if f.endswith(SUFFIX) and f[: -len(SUFFIX)] not in set(cases))
    if o.raters_dir:
        summary["raters"] = rater_study(o.raters_dir, pred_dir)
    write_csv(os.path.join(out_dir, "metrics.csv"), rows, FIELDS)
    write_json(os.path.join(out_dir, "summary.json"), summary)
    write_text(os.path.join(out_dir, "summary.md"), to_markdown(summary))
    if o.plots:
        p.dice_boxplot(rows, os.path.join(out_dir, "dice_by_subgroup.png"))
        for q in ("volume", "length"):
            p.scatter_identity(rows, q, os.path.join(out_dir, f"{q}_scatter.png"))
            p.bland_altman_plot(rows, q, os.path.join(out_dir, f"{q}_bland_altman.png"))
    logger.log(logging.DEBUG if quiet else logging.INFO,
               f"evaluated {len(rows)} cases in {time.perf_counter() - start:.2f} s -> {out_dir}")
    return summary


def evidence_columns(summary: dict) -> dict:
    """The trust figures of one evaluated model as a flat dict (benchmark table columns); NaN where undefined.

    Keys: ``clot_free_specificity`` (no call in a clot-free head), ``fp_calls_per_clot_free_head``,
    ``lvo_sensitivity``, ``lvo_specificity``, ``m2_aca_detection`` (occlusion found at M2 or ACA),
    ``uncertainty_spearman_rho`` (vs Dice), ``uncertainty_auroc_poor_dice`` (Dice < 0.6), ``review_sensitivity``,
    ``review_specificity`` (for bad cases), ``dropped_on_reference`` (cases where post-processing dropped a component
    over the reference clot); the 95% CIs of the proportions (Wilson) and of the AUROC (stratified bootstrap) as
    ``<key>_ci_low`` / ``<key>_ci_high``.
    """
    nan = float("nan")
    det, trust = summary["detection"], summary.get("trust") or {}
    sites = (summary.get("subgroups") or {}).get("site") or {}
    tp = sum(sites[s]["detection"]["tp"] for s in ("M2", "ACA") if s in sites)
    pos = sum(sites[s]["detection"]["tp"] + sites[s]["detection"]["fn"] for s in ("M2", "ACA") if s in sites)
    review = trust.get("review") or {}
    val = lambda d, k: nan if d is None or d.get(k) is None else float(d[k])  # noqa: E731
    cols = {"clot_free_specificity": val(det["occlusion_vs_none"], "specificity"),
            "fp_calls_per_clot_free_head": val(summary.get("false_positives"), "per_clot_free_head"),
            "lvo_sensitivity": val(det["lvo_vs_non_lvo"], "sensitivity"),
            "lvo_specificity": val(det["lvo_vs_non_lvo"], "specificity"),
            "m2_aca_detection": tp / pos if pos else nan,
            "uncertainty_spearman_rho": val(trust.get("spearman_vs_dice"), "r"),
            "uncertainty_auroc_poor_dice": val(trust.get("auroc_poor_dice"), "auroc"),
            "review_sensitivity": val(review, "sensitivity"), "review_specificity": val(review, "specificity"),
            "dropped_on_reference": val(trust, "dropped_on_reference")}
    intervals = {"clot_free_specificity": (det["occlusion_vs_none"] or {}).get("specificity_ci"),
                 "lvo_sensitivity": (det["lvo_vs_non_lvo"] or {}).get("sensitivity_ci"),
                 "lvo_specificity": (det["lvo_vs_non_lvo"] or {}).get("specificity_ci"),
                 "m2_aca_detection": list(wilson_ci(tp, pos)),
                 "uncertainty_auroc_poor_dice": (trust.get("auroc_poor_dice") or {}).get("ci"),
                 "review_sensitivity": review.get("sensitivity_ci"), "review_specificity": review.get("specificity_ci")}
    for key, ci in intervals.items():
        low, high = ci if ci is not None else (None, None)
        cols[f"{key}_ci_low"] = nan if low is None else float(low)
        cols[f"{key}_ci_high"] = nan if high is None else float(high)
    return cols
