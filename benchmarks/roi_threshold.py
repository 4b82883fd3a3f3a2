"""Choose the ROI threshold of the fine stage on validation cases: windows run and clot coverage per threshold.

For each fold-0 validation case (``splits_final.json``; images and labels from ``imagesTr``/``labelsTr``), run our
coarse stage, then for each candidate threshold report how many fine windows the ROI-restricted fine stage would
run (out of the full sliding window) and which fraction of the reference clot lies inside the candidate region
grown by half a fine patch (the region the fine stage is guaranteed to visit). The suggested threshold is the
highest one at which every validation clot is fully inside; pass it to ``nnunet_thrombus predict --roi-threshold``
or ``benchmarks/inference_speed.py --roi-threshold``. Only validation cases are read, never the test set.

    python benchmarks/roi_threshold.py -r OUT/work/nnUNet_results -p PREPROCESSED/Dataset501_X \\
        --raw RAW/Dataset501_X --pad-to 64 137 131
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-r", "--results", required=True, type=Path, help="nnUNet_results folder. Required.")
    ap.add_argument("-p", "--preprocessed", required=True, type=Path,
                    help="nnUNet_preprocessed/DatasetXXX folder holding splits_final.json. Required.")
    ap.add_argument("--raw", required=True, type=Path, help="nnUNet_raw/DatasetXXX folder. Required.")
    ap.add_argument("--trainer", default="ThrombusCascadeTrainer", help="Default: ThrombusCascadeTrainer.")
    ap.add_argument("--fold", type=int, default=0, help="Default: 0.")
    ap.add_argument("--pad-to", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                    help="embed each case in a larger field (as inference_speed.py). Default: off.")
    ap.add_argument("-t", "--threads", type=int, default=1, help="torch CPU threads. Default: 1.")
    args = ap.parse_args(argv)

    import torch
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from scipy import ndimage

    from inference_speed import pad_centred
    from nnunet_thrombus.inference.cascade_predictor import ThrombusCascadePredictor
    from nnunet_thrombus.nnunet_env import ext_trainer_value

    os.environ["nnUNet_extTrainer"] = ext_trainer_value(os.environ.get("nnUNet_extTrainer"))
    torch.set_num_threads(args.threads)
    ds = next(args.results.glob(f"{args.preprocessed.name}"))
    c = ThrombusCascadePredictor(str(ds / f"{args.trainer}__ThrombusPlans__3d_lowres"),
                                 str(ds / f"{args.trainer}__ThrombusPlans__3d_cascade_fullres"),
                                 folds=(args.fold,), use_mirroring=False)
    cases = json.loads((args.preprocessed / "splits_final.json").read_text())[args.fold]["val"]
    io = SimpleITKIO()
    worst = {t: 1.0 for t in THRESHOLDS}
    windows = {t: [] for t in THRESHOLDS}
    for case in cases:
        data, props = io.read_images(sorted(str(p) for p in (args.raw / "imagesTr").glob(f"{case}_0*.nii.gz")))
        ref = io.read_seg(str(args.raw / "labelsTr" / f"{case}.nii.gz"))[0][0] > 0
        if args.pad_to:
            data, ref = pad_centred(data, ref, args.pad_to)
        prob, fine = c.coarse_stage(data.astype(np.float32), props["spacing"])
        shape = fine["data"].shape[1:]
        scale = np.asarray(c.fine.configuration_manager.spacing) / np.asarray(props["spacing"])
        grow = [2 * int(np.ceil(m * s)) + 1 for m, s in zip(c.fine.margin, scale)]
        parts = [f"{case}: clot {int(ref.sum())} voxels"]
        for t in THRESHOLDS:
            c.roi_threshold = t
            roi = c.candidate_region(prob, fine["data_properties"], shape)
            if roi is None:
                parts.append(f"t={t}: fallback (whole image)")
                windows[t].append(None)
                continue
            c.fine.roi = roi
            placement, _, n_run, n_full = c.fine.plan_windows(shape)
            windows[t].append(n_run / n_full)
            covered = float((ndimage.maximum_filter(prob > t, size=grow) & ref).sum() / ref.sum()) if ref.any() \
                else 1.0
            worst[t] = min(worst[t], covered)
            parts.append(f"t={t}: {n_run}/{n_full} windows ({placement}), clot inside {covered:.2f}")
        print(" | ".join(parts), flush=True)
    ok = [t for t in THRESHOLDS if worst[t] >= 1.0]
    for t in THRESHOLDS:
        shares = [w for w in windows[t] if w is not None]
        print(f"t={t}: every validation clot fully inside: {worst[t] >= 1.0} (worst {worst[t]:.2f}); median share "
              f"of windows {np.median(shares) if shares else float('nan'):.2f}; fallbacks {windows[t].count(None)}")
    print(f"suggested --roi-threshold: {max(ok) if ok else 'none (keep --no-roi)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
