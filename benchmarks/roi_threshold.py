"""Choose the ROI threshold of the fine stage on validation cases: windows run and clot coverage per threshold.

For each fold-0 validation case (``splits_final.json``; images and labels from ``imagesTr``/``labelsTr``), run our
coarse stage, then for each candidate threshold report how many fine windows the ROI-restricted fine stage would
run (out of the full sliding window) and which fraction of the reference clot lies inside the candidate region
grown by half a fine patch (the region the fine stage is guaranteed to visit). The suggested threshold is the
one that runs the fewest windows among those at which every validation clot is fully inside; pass it to
``nnunet_thrombus predict --roi-threshold`` or ``benchmarks/inference_speed.py --roi-threshold``. Only validation
cases are read, never the test set. The rule is ``nnunet_thrombus.calibration.roi`` (what
``nnunet_thrombus fit-roi`` stores with a model); this script adds ``--pad-to``, to choose it for the whole-head
field of ``inference_speed.py``.

    python benchmarks/roi_threshold.py -r OUT/work/nnUNet_results -p PREPROCESSED/Dataset501_X \\
        --raw RAW/Dataset501_X --pad-to 64 137 131
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from nnunet_thrombus.model_folder import DEFAULT_PLANS, DEFAULT_TRAINER

logger = logging.getLogger(__name__)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-r", "--results", required=True, type=Path, help="nnUNet_results folder. Required.")
    ap.add_argument("-p", "--preprocessed", required=True, type=Path,
                    help="nnUNet_preprocessed/DatasetXXX folder holding splits_final.json. Required.")
    ap.add_argument("--raw", required=True, type=Path, help="nnUNet_raw/DatasetXXX folder. Required.")
    ap.add_argument("-tr", "--trainer", default=DEFAULT_TRAINER, help=f"Default: {DEFAULT_TRAINER}.")
    ap.add_argument("-pl", "--plans", default=DEFAULT_PLANS, help=f"plans identifier. Default: {DEFAULT_PLANS}.")
    ap.add_argument("--fold", type=int, default=0, help="Default: 0.")
    ap.add_argument("--pad-to", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                    help="embed each case in a larger field (as inference_speed.py). Default: off.")
    ap.add_argument("-t", "--threads", type=int, default=1, help="torch CPU threads. Default: 1.")
    args = ap.parse_args(argv)
    from nnunet_thrombus.console import configure_logging

    configure_logging()  # progress lines on stderr; the results below are this script's stdout

    import torch
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    from inference_speed import pad_centred
    from nnunet_thrombus.inference.cascade_predictor import ThrombusCascadePredictor
    from nnunet_thrombus.calibration.roi import choose_threshold, evaluate_case, format_case, format_table
    from nnunet_thrombus.model_folder import COARSE, FINE, stage_identifier

    torch.set_num_threads(args.threads)
    ds = next(args.results.glob(f"{args.preprocessed.name}"))
    c = ThrombusCascadePredictor(str(ds / stage_identifier(args.trainer, args.plans, COARSE)),
                                 str(ds / stage_identifier(args.trainer, args.plans, FINE)),
                                 folds=(args.fold,), use_mirroring=False)
    cases = json.loads((args.preprocessed / "splits_final.json").read_text())[args.fold]["val"]
    io = SimpleITKIO()
    per_case = {}
    for case in cases:
        data, props = io.read_images(sorted(str(p) for p in (args.raw / "imagesTr").glob(f"{case}_0*.nii.gz")))
        ref = io.read_seg(str(args.raw / "labelsTr" / f"{case}.nii.gz"))[0][0] > 0
        if args.pad_to:
            data, ref = pad_centred(data, ref, args.pad_to)
        per_case[case] = evaluate_case(c, data, props["spacing"], ref)
        logger.info(f"{case}: clot {int(ref.sum())} voxels | {format_case(per_case[case])}")
    chosen = choose_threshold(per_case)
    for line in format_table(chosen["table"]):
        print(line)
    best = chosen["threshold"]
    print(f"suggested --roi-threshold: {best if best is not None else 'none (keep --no-roi)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
