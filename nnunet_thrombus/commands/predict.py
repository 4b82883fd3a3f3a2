"""``nnunet_thrombus predict``: NCCT + CTA scans -> thrombus mask, report, overlay per case (docs/predict.md).

A thin CLI: the flags become ``ModelOptions`` / ``OutputOptions`` / ``BatchOptions``
(:mod:`nnunet_thrombus.inference.options`) for :func:`nnunet_thrombus.inference.pipeline.predict_cases` (or the Ray
backend), which loads the model once and predicts every case."""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os

from nnunet_thrombus.model_folder import DEFAULT_PLANS, DEFAULT_TRAINER
from nnunet_thrombus.vocabulary import DEFAULT_ROI_THRESHOLD

logger = logging.getLogger(__name__)


def _fold(value: str):
    if value == "all" or value.isdigit():
        return int(value) if value.isdigit() else value
    raise argparse.ArgumentTypeError(f"fold must be an integer or 'all', got {value!r}")


def add_parser(subparsers) -> argparse.ArgumentParser:
    from dataset_conversion.convert_args import add_series_flags

    p = subparsers.add_parser(
        "predict", help="segment and measure thrombi on NCCT + CTA (DICOM folders, NIfTI, nnU-Net imagesTs).",
        description="Predict each case of INPUT into OUT/<case>/: thrombus.nii.gz, report.json, overlay.png "
                    "(and probabilities.npz, thrombus_seg.dcm on request), plus OUT/summary.csv and "
                    "OUT/failures.csv. Re-running skips finished cases.")
    p.add_argument("-i", "--input", required=True, nargs="+",
                   help="patient folder(s), folder(s) of patient folders, or an nnU-Net imagesTs folder. Required.")
    p.add_argument("-o", "--output", required=True, help="output folder. Required.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-d", "--dataset", default=None, help="dataset id or name under nnUNet_results. Default: none.")
    src.add_argument("-m", "--model", default=None,
                     help="folder holding the <trainer>__<plans>__3d_lowres and ..3d_cascade_fullres model "
                          "folders (a copied results folder). Default: none.")
    p.add_argument("-tr", "--trainer", default=DEFAULT_TRAINER,
                   help="trainer the model was trained with (an ablation such as ThrombusCascadeTrainer_noCBAM, or "
                        f"a recipe variant). Default: {DEFAULT_TRAINER}.")
    p.add_argument("-p", "--plans", default=DEFAULT_PLANS,
                   help="plans identifier the model was trained with (nnUNetPlans when apply-plans added the "
                        f"cascade to nnU-Net's own plans). Default: {DEFAULT_PLANS}.")
    p.add_argument("-f", "--folds", nargs="+", type=_fold, default=None,
                   help="folds to ensemble. Default: every trained fold.")
    p.add_argument("-device", "--device", choices=("cuda", "cpu", "mps"), default=None,
                   help="torch device. Default: cuda when available, else cpu (the choice is printed).")
    p.add_argument("--disable-tta", action="store_true", help="no mirroring test-time augmentation. Default: TTA on.")
    p.add_argument("--no-roi", action="store_true",
                   help="fine stage over the whole image instead of the coarse candidate region. Default: ROI on.")
    p.add_argument("--roi-threshold", type=float, default=None,
                   help="coarse thrombus probability above which the fine stage looks (grown by half a patch). "
                        "Default: the model's roi_threshold.json (written by fit-roi), else "
                        f"{DEFAULT_ROI_THRESHOLD:g}.")
    p.add_argument("--save-probabilities", action="store_true",
                   help="also write probabilities.npz (float16). Default: off.")
    p.add_argument("--dicom-seg", action="store_true",
                   help="also write thrombus_seg.dcm (DICOM SEG) for DICOM input. Default: off.")
    p.add_argument("--dicom-sr", action="store_true",
                   help="also write thrombus_sr.dcm (DICOM SR of the measurements, referencing the SEG; implies "
                        "--dicom-seg) for DICOM input. Default: off.")
    p.add_argument("--anonymize", action="store_true",
                   help="de-identify every output (SEG built from an allow-list of header attributes, keyed UIDs "
                        "and date shift; no header value in report, tables, overlay, logs; docs/"
                        "deidentification.md). Default: off (the SEG copies the source patient module).")
    p.add_argument("--anonymize-seg", action="store_true",
                   help="de-identify the DICOM SEG only, as --anonymize does (the other outputs as without it). "
                        "Default: off.")
    p.add_argument("--deid-key", default=None, metavar="FILE",
                   help="key file of the --anonymize UID/date mapping (created when missing). Keep it to re-link "
                        "outputs to their sources, delete it to make the link one-way, never share it. "
                        "Default: OUT/deid_key.txt.")
    p.add_argument("--keep-phi", action="store_true",
                   help="allow DICOM patient identifiers in report.json. Default: case id only.")
    p.add_argument("--allow-thick-slices", action="store_true",
                   help="accept slices > 2.5 mm (resampled to 1 mm, flagged). Default: refused.")
    add_series_flags(p, scope="(needs a single patient folder as -i)")
    p.add_argument("--num-parts", type=int, default=1, help="split the cases into N parts. Default: 1.")
    p.add_argument("--part-id", type=int, default=0, help="which part (0..N-1) this run predicts. Default: 0.")
    p.add_argument("--ray-address", default=None,
                   help="run the cases as Ray tasks on this cluster ('auto' = the running one, 'local' = start a "
                        "local one); needs pip install 'nnunet_thrombus[distributed]'. Default: no Ray, serial.")
    p.add_argument("--ray-parts", type=int, default=None,
                   help="number of Ray tasks (each loads the model once). Default: one per cluster CPU.")
    p.add_argument("--ray-gpus-per-task", type=float, default=0.0, help="GPUs per Ray task. Default: 0.")
    p.add_argument("--cache-dir", default=None,
                   help="folder caching registration + skull stripping per pair of scans, so predicting the same "
                        "scans again (another model, other options) reuses them; holds voxel data, no DICOM tags. "
                        "Default: $NNUNET_THROMBUS_CACHE, else OUTPUT/.preprocess_cache (patient voxels stay "
                        "with the outputs, never in a home folder).")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write that cache. Default: cache on.")
    p.add_argument("--overwrite", action="store_true", help="redo finished cases too. Default: skip them.")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="errors only, as the global -q: no per-case lines. Default: off.")
    p.set_defaults(func=run, _parser=p)
    return p


def run(args) -> int:
    if args.num_parts < 1 or not 0 <= args.part_id < args.num_parts:
        args._parser.error(f"need --num-parts >= 1 and 0 <= --part-id < --num-parts, got {args.num_parts}, "
                           f"{args.part_id}")
    if args.roi_threshold is not None and not 0.0 < args.roi_threshold < 1.0:
        args._parser.error(f"--roi-threshold is a probability in (0, 1), got {args.roi_threshold}")
    if args.anonymize_seg and not (args.dicom_seg or args.dicom_sr):
        args._parser.error("--anonymize-seg needs --dicom-seg or --dicom-sr")
    if args.anonymize and args.keep_phi:
        args._parser.error("--anonymize and --keep-phi contradict each other; give one")
    if args.deid_key and not (args.anonymize or args.anonymize_seg):
        args._parser.error("--deid-key needs --anonymize or --anonymize-seg")
    if args.no_cache and args.cache_dir:
        args._parser.error("--no-cache and --cache-dir contradict each other; give one")
    if args.ray_address and args.num_parts != 1:
        args._parser.error("--ray-address splits the cases itself; do not combine it with --num-parts")
    if args.ray_address and importlib.util.find_spec("ray") is None:
        args._parser.error("--ray-address needs Ray, which is not installed: "
                           "pip install 'nnunet_thrombus[distributed]'")
    # the library (SimpleITK, torch, nnU-Net) loads when the command runs, so that --help stays instant
    from nnunet_thrombus.inference.model_files import ModelError
    from nnunet_thrombus.inference.options import BatchOptions, ModelOptions, OutputOptions
    from nnunet_thrombus.inference.pipeline import predict_cases
    from nnunet_thrombus.inference.preprocess_cache import CACHE_ENV, default_cache_dir
    from nnunet_thrombus.nnunet_env import announce_device

    cache_dir = None if args.no_cache else str(default_cache_dir(args.output, args.cache_dir
                                                                   or os.environ.get(CACHE_ENV)))
    try:
        device = announce_device(args.device, quiet=args.quiet)
    except ValueError as exc:
        args._parser.error(str(exc))
    model = ModelOptions(model=args.model, dataset=args.dataset, trainer=args.trainer, plans=args.plans,
                         folds=args.folds, device=device, use_tta=not args.disable_tta, roi_restrict=not args.no_roi,
                         roi_threshold=args.roi_threshold)
    outputs = OutputOptions(save_probabilities=args.save_probabilities, dicom_seg=args.dicom_seg,
                            dicom_sr=args.dicom_sr, anonymize=args.anonymize, anonymize_seg=args.anonymize_seg,
                            deid_key=args.deid_key, keep_phi=args.keep_phi)
    batch = BatchOptions(allow_thick_slices=args.allow_thick_slices, num_parts=args.num_parts, part_id=args.part_id,
                         overwrite=args.overwrite, quiet=args.quiet, cache_dir=cache_dir,
                         ncct_series=args.ncct_series, cta_series=args.cta_series)
    try:
        if args.ray_address:
            from nnunet_thrombus.inference.ray_backend import predict_cases_ray

            address = None if args.ray_address == "local" else args.ray_address
            result = predict_cases_ray(args.input, args.output, model, outputs, batch, ray_address=address,
                                       num_parts=args.ray_parts, gpus_per_task=args.ray_gpus_per_task)
        else:
            result = predict_cases(args.input, args.output, model, outputs, batch)
    except (ModelError, OSError, ValueError) as exc:
        logger.error(str(exc))
        return 2
    return 1 if result["failed"] else 0
