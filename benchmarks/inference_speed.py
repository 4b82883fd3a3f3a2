"""Inference time and Dice of four ways to segment the same cases with the same trained weights, in one run.

(a) vanilla nnU-Net 3d_fullres, (b) vanilla nnU-Net cascade (3d_lowres -> 3d_cascade_fullres), both through
nnU-Net's own predictor in this process (``nnUNetPredictor.predict_single_npy_array``: model loading and process
start-up are excluded); (c) our cascade (``ThrombusCascadePredictor``) with the fine stage's full sliding window;
(d) the same with the ROI-restricted fine stage. All four use the same TTA setting and device; the cases are
visited in turn (a, b, c, d for case 1, then case 2, ...) so that load on a shared machine hits all alike.
Times are seconds per case from image array in to label array out (preprocessing, sliding window, resampling to
the input grid), printed as a ratio to (a); (d)/(c) is the ROI-restricted fine stage's speed-up.
(e) (``-m abcde``): (c) with the same weights but the former coarse source: the ``3d_lowres`` model's sliding window
for the coarse prediction and the coarse branch re-run on every fine window (``coarse_context="patch"``); (e)/(c)
is what the global coarse context (one whole-case coarse pass per case) saves. Each of (c), (d), (e) reports the
seconds of its coarse stage per case and, for (d), the share of the full grid's fine windows the ROI ran.

CPU example (the weights of a ``nnunet_thrombus benchmark`` run):

    python benchmarks/inference_speed.py -r OUT/work/nnUNet_results -i RAW/Dataset501_SynthThrombus/imagesTs \\
        -l RAW/Dataset501_SynthThrombus/labelsTs -d 501 -o docs/results/inference_speed.json

GPU, paper preset (models trained with ``nnunet_thrombus benchmark -d 501 --budget gpu``):

    python benchmarks/inference_speed.py -r OUT/work/nnUNet_results -i .../imagesTs -l .../labelsTs -d 501 \\
        --device cuda --tta
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from nnunet_thrombus.masks import dice

from nnunet_thrombus.model_folder import DEFAULT_PLANS as PLANS  # noqa: E402
from nnunet_thrombus.model_folder import DEFAULT_TRAINER  # noqa: E402
from nnunet_thrombus.commands._nnunet_paths import find_our_trainers  # noqa: E402
from nnunet_thrombus.model_folder import stage_identifier  # noqa: E402

logger = logging.getLogger(__name__)


def pad_centred(data: np.ndarray, ref: np.ndarray, shape_zyx) -> tuple[np.ndarray, np.ndarray]:
    """Embed a case (``data`` (C, Z, Y, X), ``ref`` (Z, Y, X)) in the centre of a larger field of view
    ``shape_zyx``: image channels padded with their own corner value (the skull-strip background, so nnU-Net's
    crop-to-nonzero keeps the whole field), the reference with 0. Sizes smaller than the case are kept."""
    target = [max(int(t), s) for t, s in zip(shape_zyx, ref.shape)]
    before = [(t - s) // 2 for t, s in zip(target, ref.shape)]
    sl = tuple(slice(b, b + s) for b, s in zip(before, ref.shape))
    out = np.empty((data.shape[0], *target), dtype=np.float32)
    for ch in range(data.shape[0]):
        out[ch] = data[ch, 0, 0, 0]
        out[ch][sl] = data[ch]
    big = np.zeros(target, dtype=bool)
    big[sl] = ref
    return out, big


def _nnunet_predictor(model_dir: Path, device, tta: bool):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    p = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=tta,
                        perform_everything_on_device=device.type == "cuda", device=device, verbose=False,
                        verbose_preprocessing=False, allow_tqdm=False)
    p.initialize_from_trained_model_folder(str(model_dir), use_folds=(0,), checkpoint_name="checkpoint_final.pth")
    return p


def _folder(results: Path, dataset: str, trainer: str, config: str) -> Path:
    return results / dataset / stage_identifier(trainer, PLANS, config)


def run(results: Path, images: Path, labels: Path, dataset_id: int, vanilla: str, ours: str, device: str,
        tta: bool, max_cases: int | None, threads: int, pad_to=None, methods: str = "abcd",
        roi_threshold: float | None = None) -> dict:
    import torch
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    from nnunet_thrombus.inference.cascade_predictor import ThrombusCascadePredictor

    find_our_trainers()  # the vanilla rows load with nnU-Net's own predictor
    torch.set_num_threads(threads)
    dev = torch.device(device)
    dataset = next(p.name for p in results.glob(f"Dataset{dataset_id:03d}_*"))
    t0 = time.perf_counter()
    methods = "".join(k for k in "abcde" if k in methods)
    if "a" in methods:
        a = _nnunet_predictor(_folder(results, dataset, vanilla, "3d_fullres"), dev, tta)
    if "b" in methods:
        b_low = _nnunet_predictor(_folder(results, dataset, vanilla, "3d_lowres"), dev, tta)
        b_fine = _nnunet_predictor(_folder(results, dataset, vanilla, "3d_cascade_fullres"), dev, tta)
    kw = dict(folds=(0,), device=device, use_mirroring=tta)
    coarse, fine = _folder(results, dataset, ours, "3d_lowres"), _folder(results, dataset, ours, "3d_cascade_fullres")
    c = ThrombusCascadePredictor(str(coarse), str(fine), roi_restrict=False, **kw)
    d = ThrombusCascadePredictor(str(coarse), str(fine), roi_restrict=True, **kw,
                                 **({} if roi_threshold is None else {"roi_threshold": roi_threshold}))
    ours_runs = [("c", c), ("d", d)]
    if "e" in methods:
        ours_runs.append(("e", ThrombusCascadePredictor(str(coarse), str(fine), roi_restrict=False,
                                                        coarse_context="patch", **kw)))
    load_s = time.perf_counter() - t0
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in images.glob("*_0000.nii.gz"))[:max_cases]
    io = SimpleITKIO()
    rows = []
    for case in cases:
        files = sorted(str(p) for p in images.glob(f"{case}_[0-9][0-9][0-9][0-9].nii.gz"))
        data, props = io.read_images(files)
        ref, _ = io.read_seg(str(labels / f"{case}.nii.gz"))
        ref = ref[0] > 0
        if pad_to:
            data, ref = pad_centred(data, ref, pad_to)
        data = data.astype(np.float32)
        row = {"case": case, "shape_zyx": list(data.shape[1:]), "reference_voxels": int(ref.sum())}
        if "a" in methods:
            t = time.perf_counter()
            seg = a.predict_single_npy_array(data, props, None, None, False) > 0
            row["a_s"], row["a_dice"] = time.perf_counter() - t, dice(seg, ref)
            row["a_found"] = bool((seg & ref).any())
        if "b" in methods:
            t = time.perf_counter()
            low = b_low.predict_single_npy_array(data, props, None, None, False)
            seg = b_fine.predict_single_npy_array(data, props, low[None].astype(np.int16), None, False) > 0
            row["b_s"], row["b_dice"] = time.perf_counter() - t, dice(seg, ref)
            row["b_found"] = bool((seg & ref).any())
        for key, pred in ours_runs:
            t = time.perf_counter()
            res = pred.predict(data, props["spacing"])
            seg = res.segmentation > 0
            row[f"{key}_s"], row[f"{key}_dice"] = time.perf_counter() - t, dice(seg, ref)
            row[f"{key}_found"] = bool((seg & ref).any())
            row[f"{key}_fine_tiles"] = list(res.fine_tiles)
            row[f"{key}_fallback"] = bool(res.roi_fallback)
            row[f"{key}_placement"] = res.fine_placement
            row[f"{key}_timings_s"] = {k: round(v, 3) for k, v in res.timings_s.items()}
            row[f"{key}_coarse_s"] = res.timings_s.get("coarse_preprocess", 0.0) + res.timings_s.get("coarse", 0.0)
        rows.append(row)
        logger.info(f"{case} {row['shape_zyx']}: "
                    + ", ".join(f"({k}) {row[k + '_s']:.2f} s Dice {row[k + '_dice']:.3f}"
                                for k in sorted(set(methods + "cd")) if k + "_s" in row)
                    + f"; (c) tiles {row['c_fine_tiles']}, (d) tiles {row['d_fine_tiles']} ({row['d_placement']}"
                    + (", coarse found nothing: whole image" if row["d_fallback"] else "") + ")")
    summary = {"n_cases": len(rows), "device": device, "tta": tta, "threads": threads, "model_load_s": load_s,
               "pad_to": list(pad_to) if pad_to else None, "roi_threshold": d.roi_threshold,
               "trainers": {"vanilla": vanilla, "ours": ours}, "results": str(results),
               "methods": sorted(set(methods + "cd"))}
    for k in summary["methods"]:
        summary[f"{k}_median_s"] = float(np.median([r[f"{k}_s"] for r in rows]))
        summary[f"{k}_total_s"] = float(np.sum([r[f"{k}_s"] for r in rows]))
        if "a" in summary["methods"]:
            summary[f"{k}_ratio_to_a"] = summary[f"{k}_total_s"] / summary["a_total_s"]
        summary[f"{k}_median_dice"] = float(np.median([r[f"{k}_dice"] for r in rows]))
    summary["d_over_c"] = summary["d_total_s"] / summary["c_total_s"]
    summary["d_window_share"] = float(np.sum([r["d_fine_tiles"][0] for r in rows]) /
                                      max(1, np.sum([r["d_fine_tiles"][1] for r in rows])))
    for k in ("c", "e"):
        if f"{k}_s" in rows[0]:
            summary[f"{k}_median_coarse_s"] = float(np.median([r[f"{k}_coarse_s"] for r in rows]))
    if "e" in summary["methods"]:
        summary["e_over_c"] = summary["e_total_s"] / summary["c_total_s"]
    summary["dice_d_minus_c"] = summary["d_median_dice"] - summary["c_median_dice"]
    summary["missed_by_d_found_by_c"] = [r["case"] for r in rows if r["c_found"] and not r["d_found"]]
    return {"summary": summary, "cases": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-r", "--results", required=True, type=Path, help="nnUNet_results folder. Required.")
    ap.add_argument("-i", "--images", required=True, type=Path, help="imagesTs folder. Required.")
    ap.add_argument("-l", "--labels", required=True, type=Path, help="labelsTs folder. Required.")
    ap.add_argument("-d", "--dataset", type=int, default=501, help="dataset id. Default: 501.")
    ap.add_argument("--vanilla", default="nnUNetTrainer_envSchedule", help="vanilla trainer. Default: "
                    "nnUNetTrainer_envSchedule.")
    ap.add_argument("--ours", default=DEFAULT_TRAINER, help=f"our trainer. Default: {DEFAULT_TRAINER}.")
    ap.add_argument("--device", default="cpu", help="torch device. Default: cpu.")
    ap.add_argument("--tta", action="store_true", help="mirroring TTA for all four. Default: off.")
    ap.add_argument("-n", "--max-cases", type=int, default=None, help="first N cases only. Default: all.")
    ap.add_argument("-t", "--threads", type=int, default=1, help="torch CPU threads. Default: 1.")
    ap.add_argument("--pad-to", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                    help="embed each case in a larger field of view (voxels) to mimic whole-head geometry. "
                         "Default: off.")
    ap.add_argument("-m", "--methods", default="abcde",
                    help="which of a, b, c, d, e to run (c and d always run). Default: abcde.")
    ap.add_argument("--roi-threshold", type=float, default=None,
                    help="coarse probability above which (d) looks. Default: ThrombusCascadePredictor's.")
    ap.add_argument("-o", "--output", type=Path, default=None, help="JSON with per-case rows. Default: none.")
    args = ap.parse_args(argv)
    from nnunet_thrombus.console import configure_logging

    configure_logging()  # progress lines on stderr; the results below are this script's stdout
    out = run(args.results, args.images, args.labels, args.dataset, args.vanilla, args.ours, args.device, args.tta,
              args.max_cases, args.threads, args.pad_to, args.methods, args.roi_threshold)
    s = out["summary"]
    print(f"\n{s['n_cases']} cases, device {s['device']}, TTA {'on' if s['tta'] else 'off'}")
    names = {"a": "vanilla 3d_fullres", "b": "vanilla cascade", "c": "ours, full sliding window",
             "d": "ours, ROI-restricted", "e": "ours, per-patch coarse (old)"}
    for k, name in names.items():
        if k not in s["methods"]:
            continue
        ratio = f"  ratio to (a) {s[k + '_ratio_to_a']:.2f}" if k + "_ratio_to_a" in s else ""
        print(f"({k}) {name:28s} median {s[k + '_median_s']:.2f} s/case{ratio}  "
              f"median Dice {s[k + '_median_dice']:.3f}")
    print(f"(d)/(c) time {s['d_over_c']:.2f}; Dice (d)-(c) {s['dice_d_minus_c']:+.3f}; "
          f"cases found by (c) and missed by (d): {s['missed_by_d_found_by_c'] or 'none'}; (d) ran "
          f"{100 * s['d_window_share']:.0f}% of the fine windows")
    if "e_over_c" in s:
        print(f"coarse stage per case: global pass (c) {s['c_median_coarse_s']:.2f} s (its fine windows only sample), "
              f"old (e) {s['e_median_coarse_s']:.2f} s + the patch branch inside every window; total (e)/(c) "
              f"{s['e_over_c']:.2f}")
    if args.output:
        from nnunet_thrombus.atomic_io import write_json

        args.output.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.output, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
