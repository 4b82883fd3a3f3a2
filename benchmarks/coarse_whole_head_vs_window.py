"""Stage 1 on held-out heads, two ways side by side: nnU-Net's sliding window and the one whole-head pass.

The fine stage is fed the coarse map of one whole-head pass (``predict``, and the stage-1 export it trains on).
Stage 1 itself was trained on patches. This script measures, on the same held-out cases with the same weights, the
coarse Dice (reference clot mask vs coarse probability > 0.5, on the input grid), the share of clots each way finds
(any overlap), the share of the head each way marks, and the seconds per case, and prints the ratios.

    python benchmarks/coarse_whole_head_vs_window.py --coarse RESULTS/DatasetX/TR__PLANS__3d_lowres \
        --fine RESULTS/DatasetX/TR__PLANS__3d_cascade_fullres --images RAW/DatasetX/imagesTs \
        --labels RAW/DatasetX/labelsTs [--fold 0] [--out OUT.json]

Arrays are SimpleITK order (z, y, x). Dice convention: both empty = 1, one empty = 0 (``docs/metrics.md``).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def dice(a, b) -> float:
    """Dice of two boolean arrays; 1.0 when both are empty."""
    import numpy as np

    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def _cases(images: Path) -> list[str]:
    return sorted(p.name[: -len("_0000.nii.gz")] for p in images.glob("*_0000.nii.gz"))


def _read(images: Path, case: str, n_channels: int):
    import numpy as np
    import SimpleITK as sitk

    chans = [sitk.ReadImage(str(images / f"{case}_{c:04d}.nii.gz")) for c in range(n_channels)]
    arr = np.stack([sitk.GetArrayFromImage(im).astype(np.float32) for im in chans])
    return arr, tuple(reversed(chans[0].GetSpacing()))


def main(argv=None) -> int:
    import numpy as np
    import SimpleITK as sitk
    import torch

    from nnunet_thrombus.inference.cascade_predictor import ThrombusCascadePredictor, foreground_probability_to_input_grid

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--coarse", required=True, type=Path, help="stage-1 (3d_lowres) model folder. Required.")
    ap.add_argument("--fine", required=True, type=Path, help="fine (3d_cascade_fullres) model folder. Required.")
    ap.add_argument("--images", required=True, type=Path, help="held-out images (nnU-Net raw names). Required.")
    ap.add_argument("--labels", required=True, type=Path, help="their reference masks. Required.")
    ap.add_argument("--fold", default="0", help="Default: 0.")
    ap.add_argument("--out", type=Path, default=None, help="also write the per-case table as JSON. Default: off.")
    args = ap.parse_args(argv)
    from nnunet_thrombus.console import configure_logging

    configure_logging()  # per-case progress on stderr; the table below is this script's stdout

    torch.manual_seed(0)
    pred = ThrombusCascadePredictor(str(args.coarse), str(args.fine), folds=(args.fold,), device="cpu",
                                    use_mirroring=False)
    window = pred.coarse  # the 3d_lowres model's own nnU-Net predictor (sliding window, Gaussian, step 0.5)
    rows = []
    for case in _cases(args.images):
        images, spacing = _read(args.images, case, pred.num_channels)
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(args.labels / f"{case}.nii.gz"))) > 0
        t0 = time.perf_counter()
        prob_head, _ = pred.coarse_stage(images, spacing)
        t_head = time.perf_counter() - t0
        t0 = time.perf_counter()
        dct = pred._preprocess(window, images, spacing)
        window.roi = None
        logits = window.predict_logits_from_preprocessed_data(dct["data"])
        prob_window = foreground_probability_to_input_grid(logits, dct["data_properties"], window.plans_manager)
        t_window = time.perf_counter() - t0
        head, win = prob_head > 0.5, prob_window > 0.5
        rows.append({"case": case, "clot": bool(ref.any()),
                     "dice_whole_head": dice(ref, head), "dice_window": dice(ref, win),
                     "found_whole_head": bool((ref & head).any()), "found_window": bool((ref & win).any()),
                     "marked_share_whole_head": float(head.mean()), "marked_share_window": float(win.mean()),
                     "agreement_dice": dice(head, win), "seconds_whole_head": t_head, "seconds_window": t_window})
        r = rows[-1]
        logger.info(f"{case}: Dice whole-head {r['dice_whole_head']:.3f}  window {r['dice_window']:.3f}  "
                    f"(maps agree {r['agreement_dice']:.3f}; {t_head:.1f} s vs {t_window:.1f} s)")
    clots = [r for r in rows if r["clot"]]
    free = [r for r in rows if not r["clot"]]

    def med(key, rs):
        return float(np.median([r[key] for r in rs])) if rs else float("nan")

    print(f"\n{len(rows)} held-out cases ({len(clots)} with a clot); fold {args.fold}; SYNTHETIC data")
    print(f"{'':32s}{'whole-head pass':>18s}{'sliding window':>18s}{'ratio':>8s}")
    for label, key, rs in (("median coarse Dice (clot cases)", "dice", clots),
                           ("median share of head marked", "marked_share", rows),
                           ("median s per case", "seconds", rows)):
        a, b = med(f"{key}_whole_head", rs), med(f"{key}_window", rs)
        print(f"{label:32s}{a:18.4f}{b:18.4f}{(a / b if b else float('nan')):8.2f}")
    for label, key, rs in (("clots found (any overlap)", "found", clots),
                           ("clot-free heads with a mark", "found", free)):
        if key == "found" and rs is free:
            a = sum(r["marked_share_whole_head"] > 0 for r in rs)
            b = sum(r["marked_share_window"] > 0 for r in rs)
        else:
            a, b = sum(r[f"{key}_whole_head"] for r in rs), sum(r[f"{key}_window"] for r in rs)
        print(f"{label:32s}{f'{a}/{len(rs)}':>18s}{f'{b}/{len(rs)}':>18s}")
    print(f"median Dice between the two maps: {med('agreement_dice', rows):.3f}")
    if args.out:
        args.out.write_text(json.dumps({"fold": args.fold, "cases": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
