"""``nnunet_thrombus evaluate``: Table-2-style metrics of predicted vs reference thrombus masks."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "evaluate", help="Dice/HD95/ASSD/NSD, volume and length agreement, LVO detection, rater study.",
        description="Compare PRED/<case>.nii.gz with REF/<case>.nii.gz and write metrics.csv, summary.json, "
                    "summary.md and plots to OUT.")
    p.add_argument("-p", "--pred", required=True, help="folder of predicted masks (<case>.nii.gz). Required.")
    p.add_argument("-r", "--ref", required=True, help="folder of reference masks (<case>.nii.gz). Required.")
    p.add_argument("-o", "--output", required=True, help="output folder. Required.")
    p.add_argument("-m", "--metadata", default=None,
                   help="metadata.csv with columns case, site, lvo, isodense, ... Default: none.")
    p.add_argument("--raters", default=None,
                   help="rater study folder DIR/<case>/rater_*.nii.gz (STAPLE consensus). Default: none.")
    p.add_argument("-b", "--brain-masks", default=None,
                   help="folder of brain masks <case>.nii.gz for the site frame. Default: image extent.")
    p.add_argument("-t", "--lvo-thresholds", default=None,
                   help="JSON of fitted LVO thresholds (from validation folds). Default: built-in rule.")
    p.add_argument("--reports", default=None,
                   help="predict's output folder (<case>/report.json): adds uncertainty vs Dice, the review flag's "
                        "sensitivity/specificity and post-processing drops. Default: none.")
    p.add_argument("--calls-from-reports", action="store_true",
                   help="with --reports: score occlusion, LVO and site by the reports' own calls (predict's brain "
                        "frame and fitted LVO rule) instead of re-measuring them from the masks. Default: off.")
    p.add_argument("--tolerance", type=float, default=1.0, help="NSD tolerance in mm. Default: 1.0.")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots. Default: plots on.")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="errors only, as the global -q: no per-case lines, no table (it is in OUT/summary.md). "
                        "Default: off.")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from nnunet_thrombus.console import print_result
    from nnunet_thrombus.evaluation.evaluate import EvaluationOptions, evaluate_folder
    from nnunet_thrombus.evaluation.summary import to_markdown

    options = EvaluationOptions(metadata_csv=args.metadata, raters_dir=args.raters, brain_mask_dir=args.brain_masks,
                                reports_dir=args.reports, lvo_thresholds=args.lvo_thresholds,
                                tolerance_mm=args.tolerance, calls_from_reports=args.calls_from_reports,
                                plots=not args.no_plots)
    summary = evaluate_folder(args.pred, args.ref, args.output, options, quiet=args.quiet)
    print_result(to_markdown(summary))
    return 0
