"""Where along the cascade a reference clot is lost: coarse stage / ROI, fine network, post-processing, or LVO rule.

For one case with a known clot, :func:`trace_clot` runs the cascade and records, in order:

1. ``coarse_max``: the coarse stage's highest thrombus probability inside the clot, and ``roi_coverage``: the share
   of the clot inside the region the fine stage visits at the predictor's ROI threshold (coarse probability above
   it, grown by half a fine patch; an empty region means the whole-image fallback, coverage 1);
2. ``fine_max``: the fine stage's highest probability inside the clot as predicted (ROI-restricted), and
   ``fine_full_max`` with the ROI restriction off (only run when the restricted run missed);
3. ``kept_overlap``: whether a component post-processing keeps overlaps the clot, with the reasons of the dropped
   components that overlapped it;
4. the case-level call on the kept components (an occlusion call needs a component of at least the LVO rule's
   ``min_volume_mm3``).

``lost_at`` names the first stage where the clot disappeared ("roi" when the restricted fine stage missed it but the
full fine stage finds it, "fine network", "post-processing", "occlusion call"), or None when the case is called an
occlusion with a kept component on the clot. :func:`summarise_traces` counts them per subgroup.
Arrays are (Z, Y, X) on the CTA grid; ``spacing`` (z, y, x) mm.
"""
from __future__ import annotations

import numpy as np

from nnunet_thrombus.calibration.lvo import lvo_call
from nnunet_thrombus.calibration.roi import clot_coverage


def trace_clot(predictor, images: np.ndarray, spacing, reference: np.ndarray, *, postprocessing, lvo_rule,
               **evidence) -> dict:
    """Trace one clot through ``predictor`` (a ``ThrombusCascadePredictor``); see the module docstring.

    images: (2, Z, Y, X) [CTA, NCCT] HU; reference: (Z, Y, X) clot mask; postprocessing: a ``Postprocessing``;
    lvo_rule: ``LVOThresholds``; evidence: what ``Postprocessing.select`` weighs besides the probability (``cta``,
    ``ncct``, ``brain`` arrays on the same grid, ``origin``, ``direction``; left out: none, identity geometry)."""
    ref = np.asarray(reference) > 0
    if not ref.any():
        raise ValueError("trace_clot needs a reference clot (the mask is empty)")
    t = predictor.roi_threshold
    result = predictor.predict(np.asarray(images, np.float32), spacing)
    coarse = np.asarray(result.coarse_probability)
    # the fine stage's margin (half a fine patch, fine voxels) on the input grid, as calibration.roi measures it
    scale = np.asarray(predictor.fine.configuration_manager.spacing, float) / np.asarray(spacing, float)
    grow = [int(np.ceil(m * s)) for m, s in zip(predictor.fine.margin, scale)]
    fallback = not bool((coarse > t).any())
    out = {"volume_mm3": float(ref.sum() * np.prod(spacing)), "coarse_max": float(coarse[ref].max()),
           "roi_threshold": float(t), "roi_fallback": fallback,
           "roi_coverage": 1.0 if fallback else clot_coverage(coarse, ref, t, grow),
           "fine_max": float(result.probability[ref].max()), "fine_full_max": None}
    found = bool((result.segmentation[ref] > 0).any())
    if not found and predictor.roi_restrict:
        predictor.roi_restrict = False
        try:
            out["fine_full_max"] = float(predictor.predict(np.asarray(images, np.float32), spacing).probability[
                ref].max())
        finally:
            predictor.roi_restrict = True
    sel = postprocessing.select(result.segmentation, spacing, probability=result.probability, reference=ref,
                                **evidence)
    out["kept_overlap"] = any(c["overlaps_reference"] for c in sel["kept"])
    out["dropped_on_clot"] = [c["reason"] for c in sel["dropped"] if c["overlaps_reference"]]
    out["kept_elsewhere"] = sum(not c["overlaps_reference"] for c in sel["kept"])
    every = sel["kept"] + sel["dropped"]
    largest = max(every, key=lambda c: c["volume_mm3"]) if every else None
    # what the replaced rule ("largest component above the LVO volume") would have done
    out["largest_is_clot"] = bool(largest and largest["overlaps_reference"])
    out["old_rule_keeps_clot"] = bool(out["largest_is_clot"] and largest["volume_mm3"] >= lvo_rule.min_volume_mm3)
    call = lvo_call(sel["kept"], lvo_rule)["call"]
    out["call"] = call
    if not found:
        out["lost_at"] = "roi" if (out["fine_full_max"] or 0.0) > 0.5 else "fine network"
    elif not out["kept_overlap"]:
        out["lost_at"] = "post-processing"
    elif call == "no occlusion":
        out["lost_at"] = "occlusion call"
    else:
        out["lost_at"] = None
    return out


def summarise_traces(traces: dict, groups: dict) -> dict:
    """{group: {"n", "found", "lost_at": {stage: count}, "median_volume_mm3", "median_coarse_max",
    "median_fine_max"}} for ``traces`` {case: trace_clot output} and ``groups`` {case: group label}."""
    out = {}
    for g in sorted(set(groups[c] for c in traces)):
        rows = [traces[c] for c in traces if groups[c] == g]
        lost = {}
        for r in rows:
            if r["lost_at"] is not None:
                lost[r["lost_at"]] = lost.get(r["lost_at"], 0) + 1
        out[g] = {"n": len(rows), "found": sum(r["lost_at"] is None for r in rows), "lost_at": lost,
                  "median_volume_mm3": float(np.median([r["volume_mm3"] for r in rows])),
                  "median_coarse_max": float(np.median([r["coarse_max"] for r in rows])),
                  "median_fine_max": float(np.median([r["fine_max"] for r in rows]))}
    return out
