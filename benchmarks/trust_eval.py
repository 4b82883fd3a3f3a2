"""Clinical-trust figures of a trained cascade on a held-out cohort, and where each missed clot was lost.

1. ``predict_cases`` on the dataset's ``imagesTs`` (the model's own post-processing and review rule; TTA off unless
   ``--tta``), then ``evaluate_folder(..., reports_dir=...)`` on ``labelsTs`` with ``metadata.csv``: clot-free
   specificity, LVO sensitivity/specificity, detection and false positives per subgroup, false-positive calls per
   clot-free head, Spearman rho / AUROC of the uncertainty, the review flag's sensitivity/specificity, and the cases
   where post-processing dropped a component over the reference clot (``evidence_columns``). Presence, LVO and
   site are the reports' own calls (``calls_from_reports``; ``--calls-from-masks`` re-measures them from the masks
   with the built-in rule and the image extent as site frame, as the benchmark does for every row).
2. ``trace_clot`` on every test case with a clot: coarse probability in the clot, share inside the fine stage's ROI,
   fine probability with and without the ROI restriction, post-processing (ours and the replaced "largest
   component" rule), call; summarised per site and size class.

Writes ``OUT/trust.json`` and prints the tables. SYNTHETIC when the cohort is.

    python benchmarks/trust_eval.py -m RESULTS/Dataset501_X --data RAW/Dataset517_Y -o OUT
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", required=True, type=Path,
                    help="model folder holding the two stage folders (an nnU-Net Dataset results folder). Required.")
    ap.add_argument("--data", required=True, type=Path,
                    help="raw dataset folder with imagesTs, labelsTs and metadata.csv. Required.")
    ap.add_argument("-o", "--out", required=True, type=Path, help="output folder. Required.")
    ap.add_argument("--tta", action="store_true", help="mirroring TTA on (default: off, CPU).")
    ap.add_argument("--device", default="cpu", help="Default: cpu.")
    ap.add_argument("--no-trace", action="store_true", help="skip the per-clot trace (default: run it).")
    ap.add_argument("--reuse-predictions", action="store_true",
                    help="evaluate OUT/predict from an earlier run instead of predicting again (default: predict).")
    ap.add_argument("--calls-from-masks", action="store_true",
                    help="score presence/LVO/site re-measured from the masks (the benchmark's rule for every model) "
                         "instead of report.json's own calls (default: the reports' calls).")
    ap.add_argument("--no-roi", action="store_true",
                    help="fine stage over the whole head, as the benchmark predicts (default: the model's ROI).")
    ap.add_argument("--save-probabilities", action="store_true",
                    help="also write each case's probabilities.npz (as predict --save-probabilities), for offline "
                         "analysis of the post-processing (default: off).")
    ap.add_argument("-tr", "--trainer", default=None, help="fine-stage trainer. Default: ThrombusCascadeTrainer.")
    ap.add_argument("-p", "--plans", default=None, help="plans identifier. Default: ThrombusPlans.")
    args = ap.parse_args(argv)
    from nnunet_thrombus.console import configure_logging

    configure_logging()  # progress lines on stderr; the results below are this script's stdout

    import numpy as np
    import SimpleITK as sitk

    from nnunet_thrombus.evaluation.evaluate import (EvaluationOptions, evaluate_folder, evidence_columns,
                                                     read_metadata)
    from nnunet_thrombus.inference.options import BatchOptions, ModelOptions, OutputOptions
    from nnunet_thrombus.inference.pipeline import predict_cases

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    pred_dir = out / "predict"
    if not args.reuse_predictions:
        model = ModelOptions(model=args.model, trainer=args.trainer, plans=args.plans, device=args.device,
                             use_tta=args.tta, roi_restrict=not args.no_roi)
        predict_cases(args.data / "imagesTs", pred_dir, model,
                      OutputOptions(save_probabilities=args.save_probabilities), BatchOptions(quiet=True))
    masks = out / "masks"
    masks.mkdir(exist_ok=True)
    for f in sorted(pred_dir.glob("*/thrombus.nii.gz")):
        shutil.copy(f, masks / f"{f.parent.name}.nii.gz")
    options = EvaluationOptions(metadata_csv=args.data / "metadata.csv", reports_dir=pred_dir, plots=False,
                                calls_from_reports=not args.calls_from_masks)
    summary = evaluate_folder(masks, args.data / "labelsTs", out / "eval", options, quiet=True)
    result = {"evidence": evidence_columns(summary), "false_positives": summary["false_positives"],
              "detection": summary["detection"], "trust": summary["trust"],
              "subgroups": {k: {g: {"n": v["n"], "detection": {x: v["detection"][x] for x in ("tp", "fn")},
                                    "false_positive_calls": v["false_positives"]["calls"]} for g, v in d.items()}
                            for k, d in summary["subgroups"].items()}}
    print(json.dumps(result["evidence"], indent=1))
    if not args.no_trace:
        from nnunet_thrombus.inference.miss_analysis import summarise_traces, trace_clot
        from nnunet_thrombus.inference.model_files import load_predictor
        from nnunet_thrombus.model_folder import DEFAULT_PLANS, DEFAULT_TRAINER
        from nnunet_thrombus.model_folder import resolve_cascade as resolve_model

        files = resolve_model(model_folder=args.model, trainer=args.trainer or DEFAULT_TRAINER,
                              plans=args.plans or DEFAULT_PLANS)
        predictor = load_predictor(files, device=args.device, use_mirroring=args.tta)
        meta = read_metadata(args.data / "metadata.csv")
        traces, groups = {}, {}
        for ref_path in sorted((args.data / "labelsTs").glob("*.nii.gz")):
            case = ref_path.name[: -len(".nii.gz")]
            ref_img = sitk.ReadImage(str(ref_path))
            ref = sitk.GetArrayFromImage(ref_img) > 0
            if not ref.any():
                continue
            cta_img = sitk.ReadImage(str(args.data / "imagesTs" / f"{case}_0000.nii.gz"))
            cta = sitk.GetArrayFromImage(cta_img).astype(np.float32)
            ncct = sitk.GetArrayFromImage(sitk.ReadImage(str(args.data / "imagesTs" / f"{case}_0001.nii.gz"))).astype(
                np.float32)
            traces[case] = trace_clot(predictor, np.stack([cta, ncct]), cta_img.GetSpacing()[::-1], ref,
                                      postprocessing=files.calibration.postprocessing, lvo_rule=files.calibration.lvo, cta=cta,
                                      ncct=ncct, brain=cta > -1000, origin=cta_img.GetOrigin(),
                                      direction=cta_img.GetDirection())
            row = meta.get(case, {})
            groups[case] = f"{row.get('site', '?')} {row.get('size_class', '?')}"
            t = traces[case]
            logger.info(f"{case} {groups[case]}: {t['volume_mm3']:.0f} mm3, coarse max {t['coarse_max']:.2f}, ROI "
                        f"coverage {t['roi_coverage']:.2f}, fine max {t['fine_max']:.2f}"
                        + ("" if t["fine_full_max"] is None else f" (whole image {t['fine_full_max']:.2f})")
                        + f", lost at {t['lost_at']}, old rule keeps it: {t['old_rule_keeps_clot']}")
        result["traces"] = traces
        result["trace_summary"] = summarise_traces(traces, groups)
        result["old_rule_would_lose"] = sorted(c for c, t in traces.items()
                                               if t["kept_overlap"] and not t["old_rule_keeps_clot"])
        print(json.dumps(result["trace_summary"], indent=1))
    (out / "trust.json").write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
