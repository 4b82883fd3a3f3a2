"""The per-case report (``report.json``), its schema, the warnings it carries, and its ``summary.csv`` row.

``report_schema()`` is the single source of ``docs/report_schema.json`` (a test checks that the file matches).
A report holds the user's case id and nothing else from the DICOM headers, unless ``keep_phi`` puts the
identifying header values under ``patient``; its ``input.series`` quotes the series descriptions, which
``deidentified_report`` (``--anonymize``) drops.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnunet_thrombus import __version__
from nnunet_thrombus.calibration.lvo import LVOThresholds, lvo_call, refine_sites
from nnunet_thrombus.calibration.review import REVIEW_CASE_FLAGS, ReviewRule, case_uncertainty
from nnunet_thrombus.deidentify import redact_tree
from nnunet_thrombus.model_folder import COARSE, FINE
from nnunet_thrombus.vocabulary import CALLS

SCHEMA_VERSION = "1.1"
#: largest component below this volume (mm^3) gets the ``tiny_clot`` warning
TINY_CLOT_MM3 = 30.0
#: median NCCT HU of the largest component below which the clot is called isodense (brain is 30-45 HU)
ISODENSE_HU = 45.0
WARNING_CODES = ("thick_slices", "poor_registration", "tiny_clot", "no_contrast", "isodense_clot",
                 "swapped_channels", "roi_fallback", "gantry_tilt")
TIMING_KEYS = ("preprocess", "coarse", "fine", "export")
SUMMARY_COLUMNS = ["case_id", "call", "review", "uncertainty_bits", "n_components", "n_dropped", "total_volume_mm3",
                   "volume_mm3", "length_mm", "mean_diameter_mm", "site", "side", "ncct_mean_hu", "relative_density",
                   "perviousness_hu", "mean_probability", "n_folds", "warnings", "time_s"]


def _num(nullable: bool = True, minimum=None) -> dict:
    s = {"type": ["number", "null"] if nullable else "number"}
    if minimum is not None:
        s["minimum"] = minimum
    return s


def _vec(n: int, item=None) -> dict:
    return {"type": "array", "items": item or {"type": "number"}, "minItems": n, "maxItems": n}


def _geometry_schema() -> dict:
    return {"type": "object", "required": ["size_xyz", "spacing_xyz_mm", "origin_xyz_mm", "direction"],
            "properties": {"size_xyz": _vec(3, {"type": "integer", "minimum": 1}), "spacing_xyz_mm": _vec(3),
                           "origin_xyz_mm": _vec(3), "direction": _vec(9)}}


#: ``model.recipe``: each stage's ``training_recipe.json`` (null for a model trained before recipes were written) and
#: a one-line label of the fine stage's (``model_folder.recipe_label``)
RECIPE_SCHEMA = {"type": "object", "required": ["label", COARSE, FINE],
                 "properties": {"label": {"type": "string"}, COARSE: {"type": ["object", "null"]},
                                FINE: {"type": ["object", "null"]}}}


def _series_schema() -> dict:
    """``input.series.ncct`` / ``.cta``: which DICOM series was read and why, what was skipped."""
    summary = {"type": "object", "required": ["series_number"],
               "properties": {"series_number": {"type": "integer"}, "description": {"type": "string"},
                              "image_type": {"type": "string"}, "n_images": {"type": "integer", "minimum": 0},
                              "reason": {"type": "string"}}}
    return {"type": "object", "required": ["source"],
            "properties": {"source": {"enum": ["dicom", "nifti"]}, "chosen": summary, "reason": {"type": "string"},
                           "skipped": {"type": "array", "items": dict(summary, required=["series_number", "reason"])},
                           "stray_files": {"type": "array", "items": {"type": "string"}},
                           "gantry_tilt_deg": _num(False, 0), "tilt_corrected": {"type": "boolean"},
                           "multiframe": {"type": "boolean"}, "transfer_syntax": {"type": "string"}}}


def _component_schema() -> dict:
    """``components[i]``: measurements of one kept component, with the evidence and reason of its selection."""
    return {
        "type": "object",
        "required": ["index", "volume_mm3", "length_mm", "mean_diameter_mm", "centroid_mm", "side", "bbox",
                     "ncct_mean_hu", "ncct_median_hu", "relative_density", "cta_mean_hu", "perviousness_hu", "site"],
        "properties": {
            "index": {"type": "integer", "minimum": 1}, "volume_mm3": _num(False, 0), "length_mm": _num(True, 0),
            "mean_diameter_mm": _num(True, 0), "centroid_mm": _vec(3), "side": {"type": ["string", "null"]},
            "bbox": _vec(6, {"type": "integer", "minimum": 0}), "ncct_mean_hu": _num(), "ncct_median_hu": _num(),
            "relative_density": _num(), "cta_mean_hu": _num(), "perviousness_hu": _num(),
            "site": {"type": "string"}, "site_coordinates": _vec(3),
            # component selection (calibration.components): evidence, decision and its reason
            "mean_probability": _num(True, 0), "max_probability": _num(True, 0),
            "on_artery": {"type": ["boolean", "null"]}, "vessel_distance_mm": _num(True, 0),
            "downstream_ratio": _num(True, 0), "kept": {"type": "boolean"}, "reason": {"type": "string"},
            "candidate": {"type": "integer", "minimum": 1}, "flags": {"type": "array", "items": {"type": "string"}}}}


def _trust_schemas() -> tuple[dict, dict]:
    """``uncertainty`` and ``review``: how sure the model is, and whether a reader should look."""
    uncertainty = {
        "type": "object", "required": ["score", "kind", "mean_entropy_bits", "max_probability_in_brain",
                                       "fold_std_in_clot", "fold_disagreement", "n_folds"],
        "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1},
                       "kind": {"enum": ["clot", "clot-free"]}, "mean_entropy_bits": _num(True, 0),
                       "max_probability_in_brain": _num(False, 0), "fold_std_in_clot": _num(True, 0),
                       "fold_disagreement": _num(True, 0), "n_folds": {"type": "integer", "minimum": 1}}}
    review = {"type": "object", "required": ["review", "reasons", "rule", "source"],
              "properties": {"review": {"type": "boolean"}, "reasons": {"type": "array", "items": {"type": "string"}},
                             "rule": {"type": "object"}, "source": {"type": "string"},
                             "flags": {"type": "array", "items": {"enum": list(REVIEW_CASE_FLAGS)}}}}
    return uncertainty, review


def _input_schema() -> dict:
    """``input``: where the scans came from, their grids, slice thickness and preprocessing."""
    return {"type": "object",
            "required": ["source", "cta_geometry", "grid_geometry", "slice_thickness_mm",
                         "thick_slices_resampled", "preprocessed_input"],
            "properties": {"source": {"enum": ["dicom", "nifti"]}, "cta_geometry": _geometry_schema(),
                           "grid_geometry": _geometry_schema(),
                           "slice_thickness_mm": {"type": "object", "required": ["cta", "ncct"],
                                                  "properties": {"cta": _num(False, 0), "ncct": _num(False, 0)}},
                           "thick_slices_resampled": {"type": "boolean"},
                           "preprocessed_input": {"type": "boolean"},
                           "preprocess_cache": {"enum": ["off", "hit", "miss", "n/a"]},
                           "deidentified": {"type": "boolean"},
                           "series": {"type": "object", "properties": {"ncct": _series_schema(),
                                                                       "cta": _series_schema()}}}}


def report_schema() -> dict:
    """JSON schema (draft 2020-12 subset) of ``report.json``."""
    component = _component_schema()
    dropped = {"type": "object", "required": ["volume_mm3", "centroid_mm", "site", "kept", "reason"],
               "properties": {**component["properties"], "index": {"type": "null"}, "kept": {"const": False}}}
    uncertainty, review = _trust_schemas()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "nnunet_thrombus predict report",
        "type": "object",
        "required": ["schema_version", "case_id", "software", "input", "registration", "model", "components",
                     "n_components", "total_volume_mm3", "call", "confidence", "warnings", "timings_s", "outputs",
                     "dropped_components", "postprocessing", "uncertainty", "review"],
        "properties": {
            "schema_version": {"const": SCHEMA_VERSION},
            "case_id": {"type": "string"},
            "software": {"type": "object", "required": ["nnunet_thrombus"]},
            "input": _input_schema(),
            "registration": {"type": "object"},
            "model": {"type": "object", "required": ["model", "folds", "tta", "roi_restrict"],
                      "properties": {"folds": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                                     "tta": {"type": "boolean"}, "roi_restrict": {"type": "boolean"},
                                     "trainer": {"type": "string"}, "plans": {"type": "string"},
                                     "recipe": RECIPE_SCHEMA}},
            "components": {"type": "array", "items": component},
            "dropped_components": {"type": "array", "items": dropped},
            "postprocessing": {"type": "object", "required": ["rule", "source", "flags"],
                               "properties": {"rule": {"type": "object"}, "source": {"type": "string"},
                                              "flags": {"type": "array", "items": {"type": "string"}}}},
            "uncertainty": uncertainty,
            "review": review,
            "n_components": {"type": "integer", "minimum": 0},
            "total_volume_mm3": _num(False, 0),
            "call": {"type": "object", "required": ["call", "rule", "lvo_thresholds", "source"],
                     "properties": {"call": {"enum": list(CALLS)}, "rule": {"type": "string"},
                                    "source": {"type": "string"}}},
            "confidence": {"type": "object", "required": ["mean_probability_in_mask", "n_folds"],
                           "properties": {"mean_probability_in_mask": {"type": ["number", "null"], "minimum": 0,
                                                                       "maximum": 1},
                                          "n_folds": {"type": "integer", "minimum": 1}}},
            "warnings": {"type": "array", "items": {"type": "object", "required": ["code", "message"],
                                                    "properties": {"code": {"enum": list(WARNING_CODES)},
                                                                   "message": {"type": "string"}}}},
            "timings_s": {"type": "object", "required": list(TIMING_KEYS),
                          "additionalProperties": {"type": "number", "minimum": 0}},
            "outputs": {"type": "object", "additionalProperties": {"type": "object", "required": ["bytes"]}},
            "patient": {"type": "object"},
        },
    }


def clot_warnings(components: list[dict]) -> list[dict]:
    """Warnings about the largest component: tiny (< 30 mm^3) and isodense (median NCCT < 45 HU)."""
    if not components:
        return []
    big = components[0]
    out = []
    if big["volume_mm3"] < TINY_CLOT_MM3:
        out.append({"code": "tiny_clot", "message": f"largest component {big['volume_mm3']:.1f} mm3 < "
                                                    f"{TINY_CLOT_MM3:g} mm3: possibly noise, review the images"})
    median = big.get("ncct_median_hu")
    if median is not None and np.isfinite(median) and median < ISODENSE_HU:
        out.append({"code": "isodense_clot", "message": f"clot median NCCT {median:.0f} HU < {ISODENSE_HU:g} HU: "
                                                        "isodense, hard to see on NCCT; rely on CTA"})
    return out


@dataclass(frozen=True, eq=False)
class CaseFindings:
    """What the model and post-processing found in one case, on the grid the model saw.

    mask: (Z, Y, X) uint8 after post-processing; probability: (Z, Y, X) thrombus probability in [0, 1];
    components: rows of ``measure_components`` (sorted by volume) kept by post-processing, each with its evidence and
    ``reason`` (``calibration.components.select_components``); folds: the folds ensembled; dropped: the components
    post-processing removed, with their reasons; postprocessing: {"rule", "source", "flags"} (None: off);
    uncertainty: ``calibration.review.case_uncertainty`` (None: computed from ``probability`` and ``mask``); review:
    {"review", "reasons", "rule", "source"} (None: ``ReviewRule().review`` with the default rule).
    """

    mask: np.ndarray
    probability: np.ndarray
    components: list
    folds: tuple
    dropped: list = field(default_factory=list)
    postprocessing: dict | None = None
    uncertainty: dict | None = None
    review: dict | None = None


def _trust(findings: CaseFindings) -> tuple[dict, dict]:
    """(uncertainty, review) of ``findings``, the defaults filled in where they are None."""
    uncertainty = findings.uncertainty
    if uncertainty is None:
        uncertainty = case_uncertainty(findings.probability, findings.mask, n_folds=len(findings.folds))
    review = findings.review
    if review is None:
        review = dict(ReviewRule().review(uncertainty, (findings.postprocessing or {}).get("flags", ())),
                      rule=ReviewRule().to_dict(), source="default")
    return uncertainty, review


def build_report(case_id: str, findings: CaseFindings, *, input_info: dict, registration_qc: dict, model_info: dict,
                 rule: LVOThresholds, rule_source: str, warnings: list[dict], timings_s: dict,
                 phi: dict | None = None) -> dict:
    """Assemble ``report.json`` for one case (``outputs`` is filled in when the case's files are written).

    input_info / registration_qc / warnings: from ``inputs.prepare_case``; model_info: the model's description;
    rule / rule_source: the occlusion rule and where it came from; timings_s: {stage: seconds}; phi: identifying
    header values, only when the user asked to keep them (``--keep-phi``).
    """
    inside = findings.mask > 0
    mean_prob = float(findings.probability[inside].mean()) if inside.any() else None
    components = refine_sites(findings.components, rule)  # the ICA calibre check: the site the call uses is shown
    call = lvo_call(components, rule)
    uncertainty, review = _trust(findings)
    folds = findings.folds
    report = {
        "schema_version": SCHEMA_VERSION,
        "case_id": case_id,
        "software": {"nnunet_thrombus": __version__},
        "input": input_info,
        "registration": registration_qc,
        "model": {**model_info, "folds": [str(f) for f in folds]},
        "components": components,
        "n_components": len(components),
        "total_volume_mm3": float(sum(c["volume_mm3"] for c in components)),
        "call": {**call, "lvo_thresholds": rule.to_dict(), "source": rule_source},
        "confidence": {"mean_probability_in_mask": mean_prob, "n_folds": len(folds),
                       "note": "mean thrombus probability inside the mask (fold ensemble average)"},
        "warnings": list(warnings) + clot_warnings(components),
        "timings_s": {k: round(float(v), 3) for k, v in timings_s.items()},
        "outputs": {},
        "dropped_components": list(findings.dropped or []),
        "postprocessing": findings.postprocessing or {"rule": {"rule": "none"}, "source": "none", "flags": []},
        "uncertainty": uncertainty,
        "review": review,
    }
    if phi:
        report["patient"] = dict(phi)
    return report


def deidentified_report(report: dict, identifying) -> dict:
    """``report`` for ``--anonymize``: no ``patient`` block, no series description (PS3.15 Table E.1-1: X) in
    ``input.series``, and every string redacted of ``identifying`` (the case's header values the profile removes);
    ``deidentified: true`` is added under ``input``."""
    out = {k: v for k, v in report.items() if k != "patient"}
    inp = dict(out.get("input") or {})
    series = {}
    for scan, rec in (inp.get("series") or {}).items():
        rec = dict(rec)
        if "chosen" in rec:
            rec["chosen"] = {k: v for k, v in rec["chosen"].items() if k != "description"}
        if "skipped" in rec:
            rec["skipped"] = [{k: v for k, v in s.items() if k != "description"} for s in rec["skipped"]]
        series[scan] = rec
    if series:
        inp["series"] = series
    inp["deidentified"] = True
    out["input"] = inp
    return redact_tree(out, identifying)


def summary_row(report: dict) -> dict:
    """One ``summary.csv`` row (largest component's numbers) from a report."""
    big = report["components"][0] if report["components"] else {}
    r = lambda v, nd=2: None if v is None else round(float(v), nd)  # noqa: E731
    unc = report.get("uncertainty") or {}
    return {"case_id": report["case_id"], "call": report["call"]["call"],
            "review": int(bool((report.get("review") or {}).get("review"))), "uncertainty_bits": r(unc.get("score"), 3),
            "n_components": report["n_components"], "n_dropped": len(report.get("dropped_components") or []),
            "total_volume_mm3": r(report["total_volume_mm3"], 1), "volume_mm3": r(big.get("volume_mm3"), 1),
            "length_mm": r(big.get("length_mm")), "mean_diameter_mm": r(big.get("mean_diameter_mm")),
            "site": big.get("site", ""), "side": big.get("side", ""), "ncct_mean_hu": r(big.get("ncct_mean_hu"), 1),
            "relative_density": r(big.get("relative_density"), 3), "perviousness_hu": r(big.get("perviousness_hu"), 1),
            "mean_probability": r(report["confidence"]["mean_probability_in_mask"], 3),
            "n_folds": report["confidence"]["n_folds"],
            "warnings": ";".join(w["code"] for w in report["warnings"]),
            "time_s": r(report["timings_s"].get("total"), 2)}
