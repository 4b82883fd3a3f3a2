"""Train, predict and evaluate every benchmark variant under one budget, timing each nnU-Net command.

Each nnU-Net step runs as the subprocess a user would type (``nnUNetv2_train``, ``nnunet_thrombus
export-next-stage``, ``nnUNetv2_predict``), with the environment of
:class:`~nnunet_thrombus.training.workflow.NnunetWorkspace`. Per subprocess we record its wall time and its peak
resident memory (``ru_maxrss`` from ``os.wait4``, which covers the process and the children it waited for).

What the timings mean:
- training time per epoch: mean of nnU-Net's own ``Epoch time: X s`` log lines, summed over the variant's stages
  (a cascade epoch = one coarse epoch + one fine epoch; ``noCoarseFeatures`` counts the stage 1 it shares with
  ``ours``);
- training total: wall time of all its training subprocesses, ``export-next-stage`` included (nnU-Net's final
  validation of each fold is part of ``nnUNetv2_train`` and so included);
- inference per case: wall time of the ``nnUNetv2_predict`` call(s) over the test images divided by the number of
  cases; each call includes one process start-up and model load, which dominates on tiny data.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_thrombus.benchmark.budgets import Budget, Variant, select_variants
from nnunet_thrombus.training.short_run import schedule_environment
from nnunet_thrombus.training.workflow import BIN, NnunetWorkspace, model_folder, plan_and_preprocess

PLANS = "ThrombusPlans"
_EPOCH_RE = re.compile(r"Epoch time:\s*([0-9.]+)\s*s")


@dataclass
class StepCost:
    """Wall seconds and peak resident memory (MiB) of one subprocess."""

    seconds: float
    peak_mb: float


@dataclass
class VariantCost:
    train_steps: list = field(default_factory=list)
    predict_steps: list = field(default_factory=list)
    epoch_seconds: list = field(default_factory=list)


def run_measured(ws: NnunetWorkspace, args: list, log_name: str, **extra_env) -> StepCost:
    """Like ``NnunetWorkspace.run`` but also returns the subprocess's peak memory (``os.wait4`` rusage)."""
    exe = BIN / str(args[0])
    cmd = [str(exe) if exe.exists() else str(args[0])] + [str(a) for a in args[1:]]
    log = ws.log_dir / f"{log_name}.log"
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=ws.env(**extra_env))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-25:])
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\nlog {log}, last lines:\n{tail}")
    return StepCost(seconds, usage.ru_maxrss / 1024.0)  # Linux: ru_maxrss in KiB


def epoch_times(model_dir: Path, fold: int = 0) -> list[float]:
    """``Epoch time`` values (s) of the newest nnU-Net training log in ``model_dir/fold_<fold>``."""
    logs = sorted((model_dir / f"fold_{fold}").glob("training_log_*.txt"))
    if not logs:
        raise FileNotFoundError(f"no training log in {model_dir / f'fold_{fold}'}")
    return [float(v) for v in _EPOCH_RE.findall(logs[-1].read_text(errors="replace"))]


def find_dataset_name(raw: Path, dataset_id: int) -> str | None:
    hits = sorted(p.name for p in Path(raw).glob(f"Dataset{int(dataset_id):03d}_*") if p.is_dir())
    return hits[0] if hits else None


class BenchmarkRun:
    """State of one benchmark run: workspace, budget, and the costs measured so far."""

    def __init__(self, ws: NnunetWorkspace, dataset_id: int, dataset_name: str, budget: Budget, out_dir: Path,
                 progress: bool = True):
        self.ws, self.dataset_id, self.dataset_name, self.budget = ws, int(dataset_id), dataset_name, budget
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.stage1: dict[str, tuple[StepCost, StepCost, list]] = {}  # trainer -> (train, export, epochs)
        self.lowres_pred: dict[str, tuple[Path, StepCost]] = {}  # trainer -> (folder, cost)

    def _say(self, msg: str) -> None:
        if self.progress:
            print(msg, flush=True)

    def _train(self, trainer: str, configuration: str) -> tuple[StepCost, list]:
        b = self.budget
        epochs = b.epochs_for(configuration)
        env = schedule_environment(epochs, b.iters, b.val_iters, save_every=max(1, epochs), optimizer=b.optimizer,
                                   mirroring=not b.disable_tta)
        t0 = time.perf_counter()
        cost = run_measured(self.ws, ["nnUNetv2_train", self.dataset_id, configuration, 0, "-tr", trainer,
                                      "-p", PLANS, "-device", b.device],
                            f"train_{trainer}_{configuration}", **env)
        epochs = epoch_times(model_folder(self.ws, self.dataset_name, configuration, trainer, PLANS))
        self._say(f"  trained {trainer} {configuration} in {time.perf_counter() - t0:.1f} s "
                  f"(epochs {', '.join(f'{e:.1f}' for e in epochs)} s; peak {cost.peak_mb:.0f} MiB)")
        return cost, epochs

    def _predict(self, trainer: str, configuration: str, out: Path, prev: Path | None = None) -> StepCost:
        b = self.budget
        args = ["nnUNetv2_predict", "-i", self.ws.raw / self.dataset_name / "imagesTs", "-o", out,
                "-d", self.dataset_id, "-c", configuration, "-tr", trainer, "-p", PLANS, "-f", 0,
                "-device", b.device, "-npp", 1, "-nps", 1]
        if b.disable_tta:
            args.append("--disable_tta")
        if prev is not None:
            args += ["-prev_stage_predictions", prev]
        cost = run_measured(self.ws, args, f"predict_{trainer}_{configuration}")
        self._say(f"  predicted {trainer} {configuration} in {cost.seconds:.1f} s")
        return cost

    def _stage1(self, trainer: str, cost: VariantCost) -> Path:
        """Train (once per trainer) the 3d_lowres stage, export it for stage 2, predict the test cases."""
        if trainer not in self.stage1:
            train, epochs = self._train(trainer, "3d_lowres")
            export = run_measured(self.ws, ["nnunet_thrombus", "export-next-stage", "-d", self.dataset_id,
                                            "-tr", trainer, "-p", PLANS, "-device", self.budget.device],
                                  f"export_{trainer}")
            self.stage1[trainer] = (train, export, epochs)
            out = self.out_dir / "predictions" / f"{trainer}_3d_lowres"
            self.lowres_pred[trainer] = (out, self._predict(trainer, "3d_lowres", out))
        train, export, epochs = self.stage1[trainer]
        cost.train_steps += [train, export]
        cost.epoch_seconds.append(epochs)
        folder, pred = self.lowres_pred[trainer]
        cost.predict_steps.append(pred)
        return folder

    def run_variant(self, variant: Variant) -> tuple[VariantCost, Path]:
        """Train and predict one variant; returns its costs and its prediction folder."""
        self._say(f"[{variant.name}] {variant.label}")
        cost = VariantCost()
        out = self.out_dir / "predictions" / variant.name
        if variant.cascade:
            prev = self._stage1(variant.stage1_trainer, cost)
            train, epochs = self._train(variant.trainer, "3d_cascade_fullres")
            cost.train_steps.append(train)
            cost.epoch_seconds.append(epochs)
            cost.predict_steps.append(self._predict(variant.trainer, "3d_cascade_fullres", out, prev))
        else:
            train, epochs = self._train(variant.trainer, "3d_fullres")
            cost.train_steps.append(train)
            cost.epoch_seconds.append(epochs)
            cost.predict_steps.append(self._predict(variant.trainer, "3d_fullres", out))
        self._postprocess(variant, out)
        return cost, out

    def _postprocess(self, variant: Variant, out: Path) -> None:
        """Every row gets the same step: a post-processing rule chosen on its own fold-0 validation predictions
        (``fit_lvo_from_validation`` writes ``postprocessing.json``), applied to its test predictions."""
        from nnunet_thrombus.inference.postprocessing import FILE, apply_to_folder
        from nnunet_thrombus.training.lvo_fit import fit_lvo_from_validation

        config = "3d_cascade_fullres" if variant.cascade else "3d_fullres"
        folder = model_folder(self.ws, self.dataset_name, config, variant.trainer, PLANS)
        try:
            info = fit_lvo_from_validation(folder, self.ws.raw / self.dataset_name)
        except (FileNotFoundError, ValueError) as exc:
            self._say(f"  no post-processing for {variant.name}: {exc}")
            return
        n = apply_to_folder(out, folder / FILE)
        pp = info.get("postprocessing") or {}
        self._say(f"  post-processing {pp.get('rule', 'none')} (validation mean Dice "
                  f"{pp.get('validation_mean_dice')}) changed {n} test mask(s)")


def prepare_data(raw: Path | None, work: Path, dataset_id: int, budget: Budget, synthetic: int | None,
                 preset: str | None, seed: int, progress: bool) -> tuple[Path, str]:
    """The raw folder and dataset name to benchmark on; generates a synthetic cohort when asked and missing."""
    raw = Path(raw) if raw else Path(os.environ.get("nnUNet_raw", work / "synth" / "nnUNet_raw"))
    name = find_dataset_name(raw, dataset_id)
    if name is not None:
        return raw, name
    if synthetic is None:
        raise ValueError(f"dataset {dataset_id} not found in nnUNet_raw={raw}; pass --synthetic N to generate "
                         f"a synthetic cohort")
    from nnunet_thrombus.synthetic.cohort import write_cohort

    n_test = max(1, min(budget.n_test, int(round(0.25 * synthetic))))
    write_cohort(work / "synth", n_cases=int(synthetic), seed=seed, preset=preset or budget.preset,
                 dataset_id=dataset_id, n_test=n_test, formats=("nifti",), progress=progress)
    raw = work / "synth" / "nnUNet_raw"
    return raw, find_dataset_name(raw, dataset_id)


def ensure_plans(ws: NnunetWorkspace, dataset_id: int, dataset_name: str, budget: Budget) -> str:
    """Plan and preprocess unless ``ThrombusPlans`` already exists in the workspace; says which."""
    plans = ws.preprocessed / dataset_name / f"{PLANS}.json"
    data = ws.preprocessed / dataset_name / f"{PLANS}_3d_fullres"
    if plans.is_file() and data.is_dir():
        return f"reused existing plans {plans}"
    plan_and_preprocess(ws, dataset_id, preset=budget.plan_preset, plans_name=PLANS, features=budget.features,
                        patch_size=budget.patch_size)
    return "planned and preprocessed in this run"


def train_and_predict(ws: NnunetWorkspace, dataset_id: int, dataset_name: str, budget: Budget, out_dir: Path,
                      variant_names=None, progress: bool = True) -> dict:
    """Run every selected variant; returns ``{variant name: (Variant, VariantCost, prediction folder)}``."""
    run = BenchmarkRun(ws, dataset_id, dataset_name, budget, out_dir, progress)
    return {v.name: (v, *run.run_variant(v)) for v in select_variants(variant_names)}
