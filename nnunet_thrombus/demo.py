"""The CPU demo: synthetic cohort -> converter -> nnU-Net planning -> coarse + fine training -> prediction from
DICOM -> evaluation, beside vanilla nnU-Net 3d_fullres trained under the same budget.

Everything runs through the same code paths a user runs: ``write_cohort`` (synth), ``convert_trial_dataset``
(convert), ``nnUNetv2_*`` and ``nnunet_thrombus train`` subprocesses with ``ThrombusCascadeTrainer`` (training; the
schedule is given as flags), ``predict_cases`` (predict) and ``evaluate_folder`` (evaluate). Results are on synthetic data and are labelled so.
"""
from __future__ import annotations

import csv
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DATASET_ID = 501
DATASET_NAME = "Dataset501_DemoThrombus"
#: the demo network: the paper's structure, CPU-sized (features per stage; patch z, y, x at fine spacing)
DEMO_FEATURES = (8, 16, 32, 64)
DEMO_PATCH = (24, 48, 48)
#: short CPU runs train with AdamW 1e-3 (all three trainings, baseline included): see short_run.py
DEMO_OPTIMIZER = "adamw"
#: the coarse stage's AdamW learning rate: at 1e-3 its 301 iterations found no held-out clot at coarse spacing, at
#: 3e-3 they found 3 and 2 of 4 test clots in two runs (docs/results/demo.md, "Why the coarse stage found no
#: held-out clot")
DEMO_COARSE_LR = 3e-3
DEFAULT_BUDGET_MINUTES = 17.0


@dataclass(frozen=True)
class DemoSchedule:
    """Epochs x iterations of the fine stage and of the baseline (the same), and of the coarse stage."""

    epochs: int
    iters: int
    coarse_epochs: int
    coarse_iters: int
    val_iters: int = 2

    #: minutes of the demo that are not training iterations: synth, convert, plan, export-next-stage, the final
    #: validation of each training, predict, evaluate, process start-ups (measured on 2 idle cores: 6.8), plus
    #: about 0.5 for the coarse stage's own held-out prediction (one nnUNetv2_predict start-up and 6 coarse passes
    #: of about 3 s: an estimate from the demo5 log, not yet measured on idle cores)
    FIXED_MINUTES = 7.5
    #: seconds per iteration on 2 idle cores at the demo patch: coarse, fine, baseline
    SECONDS = {"coarse": 0.31, "fine": 0.42, "baseline": 0.20}
    #: share of the fine stage's iterations the coarse stage gets
    COARSE_SHARE = 0.4

    @classmethod
    def for_budget(cls, minutes: float) -> "DemoSchedule":
        """Iterations that fit ``minutes`` end to end. The fine stage and the baseline get the same number N; the
        coarse stage gets 0.4 N. With AdamW 3e-3 (:data:`DEMO_COARSE_LR`) the coarse stage's 301 iterations of the
        default budget found 3 and 2 of 4 test clots in two runs on the demo cohort; at 1e-3 none (docs/results/demo.md).
        The fine stage needs about 750 iterations to find held-out clots reliably.
        N = (minutes - FIXED_MINUTES) * 60 / (0.4 * 0.31 + 0.42 + 0.20); the default 17 minutes gives the fine
        stage and the baseline 8 x 95 and the coarse stage 7 x 43."""
        if minutes <= 0:
            raise ValueError(f"budget must be positive minutes, got {minutes}")
        per_iter = cls.COARSE_SHARE * cls.SECONDS["coarse"] + cls.SECONDS["fine"] + cls.SECONDS["baseline"]
        n = max(20, int((minutes - cls.FIXED_MINUTES) * 60 / per_iter))
        epochs = max(2, min(8, n // 75))
        coarse = max(10, int(n * cls.COARSE_SHARE))
        coarse_epochs = max(2, min(8, coarse // 40))
        return cls(epochs=epochs, iters=max(5, n // epochs), coarse_epochs=coarse_epochs,
                   coarse_iters=max(5, coarse // coarse_epochs))


class _Progress:
    """Stage lines with elapsed time and an ETA from fixed stage weights (fractions of the whole run)."""

    WEIGHTS = {"synth": 0.04, "convert": 0.06, "plan": 0.06, "train coarse": 0.22, "train fine": 0.26,
               "train baseline": 0.2, "predict": 0.1, "evaluate": 0.06}

    def __init__(self, quiet: bool, stages):
        self.quiet, self.stages, self.t0, self.done_w = quiet, list(stages), time.perf_counter(), 0.0
        self.times = {}

    def run(self, name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        if not self.quiet:
            elapsed = start - self.t0
            eta = "" if self.done_w < 0.05 else f", ETA {elapsed / self.done_w * (1 - self.done_w) / 60:.1f} min"
            idx = self.stages.index(name) + 1
            logger.info(f"[demo {idx}/{len(self.stages)}] {name} (elapsed {elapsed / 60:.1f} min{eta})")
        out = fn(*args, **kwargs)
        self.times[name] = round(time.perf_counter() - start, 1)
        self.done_w += self.WEIGHTS.get(name, 0.0) / sum(self.WEIGHTS[s] for s in self.stages)
        if not self.quiet:
            logger.info(f"    {name} done in {self.times[name]:.1f} s")
        return out


def _test_cases(metadata_csv: Path) -> list[str]:
    with open(metadata_csv) as fh:
        return sorted(r["case"] for r in csv.DictReader(fh) if r["split"] == "test")


def _flat_masks(pred_root: Path, cases, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for case in cases:
        shutil.copyfile(pred_root / case / "thrombus.nii.gz", dst / f"{case}.nii.gz")
    return dst


def coarse_heldout(pred_dir: Path, ref_dir: Path, cases) -> dict:
    """The coarse stage's own held-out result: its masks (``nnUNetv2_predict -c 3d_lowres``, on the input grid)
    against the reference labels. Returns per-case Dice (empty reference and empty mask = 1, DESIGN.md sec. 5),
    their median, and clots found (cases whose reference holds thrombus and whose mask touches it, of all such
    cases)."""
    import numpy as np
    import SimpleITK as sitk

    from nnunet_thrombus.masks import dice

    per_case, found, clots = {}, 0, 0
    for case in cases:
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(Path(ref_dir) / f"{case}.nii.gz"))) > 0
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(Path(pred_dir) / f"{case}.nii.gz"))) > 0
        if mask.shape != ref.shape:
            raise ValueError(f"{case}: coarse mask {mask.shape} and reference {ref.shape} differ in shape")
        per_case[case] = round(dice(mask, ref), 4)
        if ref.any():
            clots += 1
            found += bool((mask & ref).any())
    median = float(np.median(list(per_case.values()))) if per_case else None
    return {"dice": per_case, "dice_median": median, "clots_found": found, "clots": clots}


def fine_window_share(pred_dir: Path, cases) -> dict:
    """Fine-stage sliding windows the ROI ran, summed over ``cases`` from each ``report.json``
    (``model.fine_tiles`` = [run, of the whole-image grid]); ``share`` = run / total (None without reports)."""
    import json

    run = total = 0
    for case in cases:
        path = Path(pred_dir) / case / "report.json"
        tiles = json.loads(path.read_text()).get("model", {}).get("fine_tiles") if path.is_file() else None
        if tiles and len(tiles) == 2:
            run, total = run + int(tiles[0]), total + int(tiles[1])
    return {"run": run, "total": total, "share": run / total if total else None}


def _table_row(name: str, summary: dict) -> dict:
    m, det = summary["metrics"], summary["detection"]

    def med(key):
        return m.get(key, {}).get("median")

    lvo, occ = det["lvo_vs_non_lvo"], det["occlusion_vs_none"]
    return {"model": name, "dice_median": med("dice"), "hd95_median_mm": med("hd95_mm"),
            "assd_median_mm": med("assd_mm"), "lvo_sensitivity": lvo.get("sensitivity"),
            "lvo_specificity": lvo.get("specificity"), "occlusion_sensitivity": occ.get("sensitivity"),
            "occlusion_specificity": occ.get("specificity")}


def run_demo(out_dir, budget_minutes: float = DEFAULT_BUDGET_MINUTES, n_cases: int = 24, n_test: int = 6, seed: int = 0,
             baseline: bool = True, device: str = "cpu", quiet: bool = False, preset: str = "demo") -> dict:
    """Run the demo into ``out_dir`` (refuses a non-empty folder); returns the summary (also ``summary.json``).

    ``preset`` is the synthetic head preset (``demo``; the end-to-end test uses ``tiny``)."""
    from dataset_conversion.convert_trial import convert_trial_dataset
    from nnunet_thrombus.atomic_io import copy_file, write_json
    from nnunet_thrombus.evaluation.evaluate import evaluate_folder
    from nnunet_thrombus.inference.postprocessing import apply_to_folder
    from nnunet_thrombus.inference.pipeline import predict_cases
    from nnunet_thrombus.synthetic.cohort import write_cohort
    from nnunet_thrombus.training.workflow import NnunetWorkspace, plan_and_preprocess, train, train_cascade

    out = Path(out_dir).resolve()
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"demo output folder {out} is not empty; choose another -o or remove it")
    if n_test < 2 or n_cases - n_test < 5:
        raise ValueError(f"need >= 5 training and >= 2 test cases, got n_cases={n_cases}, n_test={n_test}")
    sched = DemoSchedule.for_budget(budget_minutes)
    stages = ["synth", "convert", "plan", "train coarse", "train fine"] + (["train baseline"] if baseline else []) \
        + ["predict", "evaluate"]
    prog = _Progress(quiet, stages)
    # nnU-Net's folders reach nnU-Net through the environment of the subprocesses ``ws`` starts; what runs here
    # (fits, prediction, evaluation) is given the folders themselves
    ws = NnunetWorkspace.under(out / "nnunet")

    cohort = prog.run("synth", write_cohort, out / "cohort", n_cases, seed=seed, preset=preset,
                      dataset_id=DATASET_ID, n_test=n_test, formats=("dicom",), progress=False)
    truth_ds = Path(cohort["paths"]["dataset"])
    test_cases = _test_cases(truth_ds / "metadata.csv")
    conv = prog.run("convert", convert_trial_dataset, out / "cohort" / "raw_dicom", ws.raw, DATASET_ID,
                    "DemoThrombus", masks_on="cta", test_cases=test_cases, quiet=True)
    if conv["failed"]:
        raise RuntimeError(f"converter failed on {conv['failed']}")
    prog.run("plan", plan_and_preprocess, ws, DATASET_ID, preset="cpu", features=DEMO_FEATURES,
             patch_size=DEMO_PATCH)
    split_src = ws.raw / DATASET_NAME / "splits_final.json"
    if split_src.is_file():
        copy_file(split_src, ws.preprocessed / DATASET_NAME / "splits_final.json")
    prog.run("train coarse", train, ws, DATASET_ID, "3d_lowres", 0, epochs=sched.coarse_epochs, iters=sched.coarse_iters,
             val_iters=sched.val_iters, device=device, optimizer=DEMO_OPTIMIZER, lr=DEMO_COARSE_LR)
    from nnunet_thrombus.training.workflow import export_next_stage

    from nnunet_thrombus.inference.validation_fit import fit_lvo_from_validation, fit_roi_threshold
    from nnunet_thrombus.model_folder import (COARSE, DEFAULT_PLANS, FINE, load_recipe, recipe_label,
                                          resolve_cascade)
    from nnunet_thrombus.training.workflow import model_folder

    coarse_dir, fine_dir = model_folder(ws, DATASET_NAME, COARSE), model_folder(ws, DATASET_NAME, FINE)
    prog.run("train fine", lambda: (export_next_stage(ws, DATASET_ID),
                                    train(ws, DATASET_ID, FINE, 0, epochs=sched.epochs,
                                          iters=sched.iters, val_iters=sched.val_iters, device=device,
                                          optimizer=DEMO_OPTIMIZER),
                                    # the LVO rule and the ROI threshold are fitted on fold 0's validation cases
                                    # only, and stored with the model (fit-lvo, fit-roi)
                                    fit_lvo_from_validation(fine_dir, ws.raw / DATASET_NAME),
                                    fit_roi_threshold(coarse_dir, fine_dir, ws.raw / DATASET_NAME, device=device,
                                                      progress=lambda _: None)))
    base_dir = model_folder(ws, DATASET_NAME, "3d_fullres", trainer="nnUNetTrainer_envSchedule")
    if baseline:
        # the baseline gets the same validation-chosen post-processing step as ours (postprocessing.json)
        prog.run("train baseline", lambda: (
            train(ws, DATASET_ID, "3d_fullres", 0, trainer="nnUNetTrainer_envSchedule", epochs=sched.epochs,
                  iters=sched.iters, val_iters=sched.val_iters, device=device, optimizer=DEMO_OPTIMIZER),
            fit_lvo_from_validation(base_dir, ws.raw / DATASET_NAME)))
    pred_dir = out / "predictions"
    inputs = [out / "cohort" / "raw_dicom" / c for c in test_cases]
    pred = prog.run("predict", predict_cases, inputs, pred_dir, model=ws.results / DATASET_NAME, device=device,
                    use_tta=False, quiet=quiet)

    def _evaluate():
        res = {"ours": evaluate_folder(_flat_masks(pred_dir, pred["done"] + pred["skipped"], out / "eval" / "ours_masks"),
                                       truth_ds / "labelsTs", out / "eval" / "ours", truth_ds / "metadata.csv",
                                       quiet=True)}
        if baseline:
            base_masks = out / "eval" / "baseline_masks"
            ws.run(["nnUNetv2_predict", "-i", ws.raw / DATASET_NAME / "imagesTs", "-o", base_masks, "-d", DATASET_ID,
                    "-c", "3d_fullres", "-tr", "nnUNetTrainer_envSchedule", "-p", DEFAULT_PLANS, "-f", "0",
                    "-device", device, "--disable_tta", "-npp", "1", "-nps", "1"], "predict_baseline")
            apply_to_folder(base_masks, base_dir / "postprocessing.json",
                            images_dir=ws.raw / DATASET_NAME / "imagesTs")
            res["baseline"] = evaluate_folder(base_masks, truth_ds / "labelsTs", out / "eval" / "baseline",
                                              truth_ds / "metadata.csv", quiet=True)
        # the coarse stage alone on the held-out cases (its masks, nnU-Net's own predict): does it localise?
        coarse_masks = out / "eval" / "coarse_masks"
        ws.run(["nnUNetv2_predict", "-i", ws.raw / DATASET_NAME / "imagesTs", "-o", coarse_masks, "-d", DATASET_ID,
                "-c", "3d_lowres", "-tr", "ThrombusCascadeTrainer", "-p", DEFAULT_PLANS, "-f", "0",
                "-device", device, "--disable_tta", "-npp", "1", "-nps", "1"], "predict_coarse")
        res["coarse"] = coarse_heldout(coarse_masks, truth_ds / "labelsTs", test_cases)
        return res

    evals = prog.run("evaluate", _evaluate)
    ours = resolve_cascade(model_folder=ws.results / DATASET_NAME, folds=[0])
    rows = [dict(_table_row("ours (ThrombusCascadeTrainer, cascade)", evals["ours"]), recipe=ours.recipe["label"],
                 roi_threshold=ours.calibration.roi.threshold, roi_threshold_source=ours.calibration.sources["roi"])]
    if baseline:
        rows.append(dict(_table_row("vanilla nnU-Net 3d_fullres (same plans, schedule as fine)", evals["baseline"]),
                         recipe=recipe_label(load_recipe(base_dir, [0]))))
    summary = {"synthetic": True, "out_dir": str(out), "budget_minutes": budget_minutes,
               "schedule": {"epochs": sched.epochs, "iterations_per_epoch": sched.iters,
                            "coarse_epochs": sched.coarse_epochs, "coarse_iterations_per_epoch": sched.coarse_iters,
                            "tta": False,
                            "optimizer": DEMO_OPTIMIZER, "coarse_lr": DEMO_COARSE_LR},
               "network": {"features": DEMO_FEATURES, "patch": DEMO_PATCH}, "n_train": n_cases - n_test,
               "n_test": n_test, "stage_seconds": prog.times, "failed_predictions": pred["failed"], "table": rows,
               "coarse_stage": evals["coarse"],
               "fine_windows": fine_window_share(pred_dir, pred["done"] + pred["skipped"]),
               "paths": {"predictions": str(pred_dir), "evaluation": str(out / "eval"),
                         "models": str(ws.results / DATASET_NAME)}}
    write_json(out / "summary.json", summary, indent=1)
    return summary


def _fmt(v, digits=3):
    return "n/a" if v is None or v != v else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def format_summary(summary: dict) -> str:
    lines = ["", "=" * 78, "nnunet_thrombus demo (SYNTHETIC data: not a clinical accuracy figure)",
             f"trained on {summary['n_train']} cases, tested on {summary['n_test']} held-out cases; fine stage and "
             f"baseline {summary['schedule']['epochs']} x {summary['schedule']['iterations_per_epoch']} iterations, "
             f"coarse stage {summary['schedule'].get('coarse_epochs', summary['schedule']['epochs'])} x "
             f"{summary['schedule'].get('coarse_iterations_per_epoch', summary['schedule']['iterations_per_epoch'])}"
             f" (AdamW, coarse lr {summary['schedule'].get('coarse_lr', 1e-3):g}); "
             f"total {sum(summary['stage_seconds'].values()) / 60:.1f} min", "",
             f"{'model':56s} {'Dice':>6s} {'HD95':>6s} {'ASSD':>6s} {'LVO sens':>8s} {'LVO spec':>8s}"]
    for r in summary["table"]:
        lines.append(f"{r['model'][:56]:56s} {_fmt(r['dice_median']):>6s} {_fmt(r['hd95_median_mm'], 1):>6s} "
                     f"{_fmt(r['assd_median_mm'], 1):>6s} {_fmt(r['lvo_sensitivity'], 2):>8s} "
                     f"{_fmt(r['lvo_specificity'], 2):>8s}")
    for r in summary["table"]:
        if r.get("recipe"):
            lines.append(f"{r['model'].split(' (')[0]} recipe: {r['recipe']}")
        if r.get("roi_threshold_source"):
            src = ("fitted on validation cases by fit-roi, " + r["roi_threshold_source"]
                   if r["roi_threshold_source"] != "default" else "default, no roi_threshold.json")
            lines.append(f"{r['model'].split(' (')[0]} fine-stage ROI threshold: {r['roi_threshold']:g} ({src})")
    coarse, windows = summary.get("coarse_stage"), summary.get("fine_windows")
    if coarse:
        lines.append(f"coarse stage alone (3d_lowres), held-out: median Dice {_fmt(coarse['dice_median'])}, "
                     f"clots found {coarse['clots_found']}/{coarse['clots']}")
    if windows and windows.get("total"):
        lines.append(f"fine-stage windows run inside the coarse ROI: {windows['run']}/{windows['total']} "
                     f"({100 * windows['share']:.0f}%)")
    lines += ["(medians over test cases; HD95/ASSD in mm; details in eval/*/summary.md)", "",
              f"predictions (mask, report.json, overlay.png per case): {summary['paths']['predictions']}",
              f"evaluation tables and plots: {summary['paths']['evaluation']}",
              f"trained models (nnU-Net results folders): {summary['paths']['models']}", "=" * 78]
    return "\n".join(lines)
