"""Train, predict and evaluate every benchmark variant under one budget, timing each nnU-Net command.

Each nnU-Net step runs as the subprocess a user would type (``nnunet_thrombus train``, which is ``nnUNetv2_train``
with schedule, optimizer and seed flags; ``nnunet_thrombus export-next-stage``; ``nnUNetv2_predict``), with the
environment of :class:`~nnunet_thrombus.training.workflow.NnunetWorkspace`. Per subprocess we record its wall time and its peak
resident memory (``ru_maxrss`` from ``os.wait4``, which covers the process and the children it waited for).

What the timings mean:
- training time per epoch: mean of nnU-Net's own ``Epoch time: X s`` log lines, summed over the variant's stages
  (a cascade epoch = one coarse epoch + one fine epoch; ``noCoarseFeatures`` counts the stage 1 it shares with
  ``ours``);
- training total: wall time of all its training subprocesses, ``export-next-stage`` included (nnU-Net's final
  validation of each fold is part of ``nnUNetv2_train`` and so included);
- inference per case: wall time of the ``nnUNetv2_predict`` call(s) over the test images divided by the number of
  cases; each call includes one process start-up and model load, which dominates on tiny data.

Seeds: every training subprocess of a row gets ``--seed <row seed>`` (``nnunet_thrombus train`` seeds the global
generators before it builds the trainer, and records the seed in ``training_recipe.json``), and
each seed has its own results root ``<work>/nnUNet_results/seed<k>``, so the seed-1 replicates never overwrite the
seed-0 models (nnU-Net names a results folder by trainer, plans and configuration only).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from nnunet_thrombus.atomic_io import write_json
from nnunet_thrombus.benchmark.budgets import PLANS, VESSEL_PLANS, Budget, Variant, select_variants
from nnunet_thrombus.calibration.postprocessing import Postprocessing
from nnunet_thrombus.inference.postprocessing import apply_to_folder
from nnunet_thrombus.model_folder import COARSE
from nnunet_thrombus.synthetic.cohort import CohortSpec, write_cohort
from nnunet_thrombus.training.epoch_progress import UNBUFFERED, EpochProgress, follow_log
from nnunet_thrombus.training.workflow import (BIN, NnunetWorkspace, command_failure, model_folder, plan_and_preprocess,
                                               short_schedule, train_arguments)

logger = logging.getLogger(__name__)

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


#: a small Python process between us and each measured command. Linux starts a child's peak-RSS count from the
#: process it was forked from (the benchmark's own, over 1 GiB once torch is loaded), so measuring the command as our
#: direct child would floor every peak at our size; the shim is small, so its child's count starts near zero.
_PEAK_SHIM = ("import os, subprocess, sys\n"
              "p = subprocess.Popen(sys.argv[2:])\n"
              "_, status, usage = os.wait4(p.pid, 0)\n"
              "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
              "sys.exit(os.waitstatus_to_exitcode(status) & 255)\n")


def step_record(ws: NnunetWorkspace, log_name: str) -> Path:
    """Where :func:`run_measured` records a finished step."""
    return ws.log_dir / f"{log_name}.done.json"


def predict_step(trainer: str, plans: str, configuration: str, seed: int) -> str:
    """Log name of an ``nnUNetv2_predict`` step of the benchmark."""
    return f"predict_{trainer}_{plans}_{configuration}_seed{seed}"


def run_measured(ws: NnunetWorkspace, args: list, log_name: str, resume: bool = False, on_line=None,
                 **extra_env) -> StepCost:
    """Like ``NnunetWorkspace.run`` but also returns the subprocess's peak memory (``ru_maxrss`` of the command and
    the children it waited for, measured by a small shim process, see :data:`_PEAK_SHIM`).

    Each successful step leaves ``<log_dir>/<log_name>.done.json`` (its command, seconds and peak). With ``resume``
    a step whose record exists for the same command is not run again; its recorded cost is returned. ``on_line``:
    called with each output line while the command runs (:class:`EpochProgress`), which then runs unbuffered."""
    exe = BIN / str(args[0])
    cmd = [str(exe) if exe.exists() else str(args[0])] + [str(a) for a in args[1:]]
    log = ws.log_dir / f"{log_name}.log"
    record = step_record(ws, log_name)
    if resume and record.is_file():
        done = json.loads(record.read_text())
        if done.get("command") == cmd:
            return StepCost(float(done["seconds"]), float(done["peak_mb"]))
    if on_line is not None:
        extra_env = {**UNBUFFERED, **extra_env}
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = os.path.join(tmp, "peak_kib")
        t0 = time.perf_counter()
        with open(log, "a") as fh:
            fh.write(f"$ {' '.join(cmd)}\n")
            fh.flush()
            with follow_log(log, on_line):
                proc = subprocess.run([sys.executable, "-c", _PEAK_SHIM, peak_file, *cmd], stdout=fh,
                                      stderr=subprocess.STDOUT, env=ws.env(**extra_env))
        seconds = time.perf_counter() - t0
        peak_kib = float(open(peak_file).read()) if os.path.isfile(peak_file) else float("nan")
    if proc.returncode != 0:
        raise command_failure(cmd, proc.returncode, log)
    cost = StepCost(seconds, peak_kib / 1024.0)  # Linux: ru_maxrss in KiB
    write_json(record, {"command": cmd, "seconds": cost.seconds, "peak_mb": cost.peak_mb})
    return cost


def epoch_times(model_dir: Path, fold: int = 0) -> list[float]:
    """``Epoch time`` values (s) of the newest nnU-Net training log in ``model_dir/fold_<fold>``."""
    logs = sorted((model_dir / f"fold_{fold}").glob("training_log_*.txt"))
    if not logs:
        raise FileNotFoundError(f"no training log in {model_dir / f'fold_{fold}'}")
    return [float(v) for v in _EPOCH_RE.findall(logs[-1].read_text(errors="replace"))]


def find_dataset_name(raw: Path, dataset_id: int) -> str | None:
    hits = sorted(p.name for p in Path(raw).glob(f"Dataset{int(dataset_id):03d}_*") if p.is_dir())
    return hits[0] if hits else None


def seed_workspace(ws: NnunetWorkspace, seed: int) -> NnunetWorkspace:
    """``ws`` with its results root moved to ``<ws.results>/seed<seed>`` (created)."""
    out = replace(ws, results=Path(ws.results) / f"seed{int(seed)}")
    out.results.mkdir(parents=True, exist_ok=True)
    return out


class BenchmarkRun:
    """State of one benchmark run: workspace, budget, and the costs measured so far."""

    def __init__(self, ws: NnunetWorkspace, dataset_id: int, dataset_name: str, budget: Budget, out_dir: Path,
                 progress: bool = True, resume: bool = False):
        self.ws, self.dataset_id, self.dataset_name, self.budget = ws, int(dataset_id), dataset_name, budget
        self.out_dir = Path(out_dir)
        self.progress = progress
        #: reuse every step an earlier run into the same folder finished (``run_measured``'s records)
        self.resume = resume
        #: extra environment of every measured step (:func:`parallel_environment` when rows run at once)
        self.step_env: dict = {}
        # (trainer, plans, seed) -> (train, export, epochs) and -> (prediction folder, cost)
        self.stage1: dict[tuple, tuple[StepCost, StepCost, list]] = {}
        self.lowres_pred: dict[tuple, tuple[Path, StepCost]] = {}

    def _say(self, msg: str) -> None:
        if self.progress:
            logger.info(msg)

    def workspace(self, seed: int) -> NnunetWorkspace:
        return seed_workspace(self.ws, seed)

    def _train(self, trainer: str, configuration: str, plans: str, seed: int) -> tuple[StepCost, list]:
        b = self.budget
        epochs = b.epochs_for(configuration)
        settings = short_schedule(epochs, b.iters, b.val_iters, optimizer=b.optimizer,
                                  mirroring=not b.disable_tta, lr=b.lr_for(configuration), seed=seed)
        ws = self.workspace(seed)
        t0 = time.perf_counter()
        cost = run_measured(ws, ["nnunet_thrombus", "train", self.dataset_id, configuration, 0, "-tr", trainer,
                                 "-p", plans, "-device", b.device, *train_arguments(settings)],
                            f"train_{trainer}_{plans}_{configuration}_seed{seed}", resume=self.resume,
                            on_line=EpochProgress(f"{trainer} {configuration} ({plans}, seed {seed})", epochs)
                            if self.progress else None, **self.step_env)
        epochs = epoch_times(model_folder(ws, self.dataset_name, configuration, trainer, plans))
        self._say(f"  trained {trainer} {configuration} ({plans}, seed {seed}) in {time.perf_counter() - t0:.1f} s "
                  f"(epochs {', '.join(f'{e:.1f}' for e in epochs)} s; peak {cost.peak_mb:.0f} MiB)")
        return cost, epochs

    def _predict(self, trainer: str, configuration: str, plans: str, seed: int, out: Path,
                 prev: Path | None = None) -> StepCost:
        b = self.budget
        args = ["nnUNetv2_predict", "-i", self.ws.raw / self.dataset_name / "imagesTs", "-o", out,
                "-d", self.dataset_id, "-c", configuration, "-tr", trainer, "-p", plans, "-f", 0,
                "-device", b.device, "-npp", 1, "-nps", 1]
        if b.disable_tta:
            args.append("--disable_tta")
        if prev is not None:
            args += ["-prev_stage_predictions", prev]
        cost = run_measured(self.workspace(seed), args, predict_step(trainer, plans, configuration, seed),
                            resume=self.resume, **self.step_env)
        self._say(f"  predicted {trainer} {configuration} in {cost.seconds:.1f} s")
        return cost

    def _stage1(self, variant: Variant, cost: VariantCost) -> Path | None:
        """Train (once per trainer, plans and seed) the 3d_lowres stage and export it for stage 2; for rows
        predicted with ``nnUNetv2_predict`` also predict the test cases at coarse spacing (once), and return that
        folder (None for rows predicted with ``nnunet_thrombus predict``, which runs its own coarse pass)."""
        trainer, plans, seed = variant.stage1_trainer, variant.plans, variant.seed
        key = (trainer, plans, seed)
        if key not in self.stage1:
            train, epochs = self._train(trainer, COARSE, plans, seed)
            export = run_measured(self.workspace(seed), ["nnunet_thrombus", "export-next-stage", "-d",
                                                         self.dataset_id, "-tr", trainer, "-p", plans,
                                                         "-device", self.budget.device],
                                  f"export_{trainer}_{plans}_seed{seed}", resume=self.resume,
                                  **self.step_env)
            self.stage1[key] = (train, export, epochs)
        train, export, epochs = self.stage1[key]
        cost.train_steps += [train, export]
        cost.epoch_seconds.append(epochs)
        if variant.thrombus_predict:
            return None
        if key not in self.lowres_pred:
            out = self.out_dir / "predictions" / f"{trainer}__{plans}__3d_lowres_seed{seed}"
            self.lowres_pred[key] = (out, self._predict(trainer, COARSE, plans, seed, out))
        folder, pred = self.lowres_pred[key]
        cost.predict_steps.append(pred)
        return folder

    def _predict_thrombus(self, variant: Variant, out: Path) -> StepCost:
        """``nnunet_thrombus predict`` over the test images (fold 0, full fine sliding window: ``--no-roi``, the
        row's fitted post-processing), then ``out/<case>.nii.gz`` from each ``<case>/thrombus.nii.gz``; the
        per-case ``report.json`` stay in ``out/../<row>_reports/`` for the uncertainty columns."""
        b = self.budget
        reports = self.reports_dir(variant)
        args = ["nnunet_thrombus", "predict", "-i", self.ws.raw / self.dataset_name / "imagesTs", "-o", reports,
                "-d", self.dataset_id, "-tr", variant.trainer, "-p", variant.plans, "-f", 0, "-device", b.device,
                "--no-roi", "--no-cache", "--overwrite", "-q"]
        if b.disable_tta:
            args.append("--disable-tta")
        cost = run_measured(self.workspace(variant.seed), args,
                            f"predict_{variant.trainer}_{variant.plans}_thrombus_seed{variant.seed}",
                            resume=self.resume, **self.step_env)
        failures = reports / "failures.csv"
        if failures.is_file() and len(failures.read_text().strip().splitlines()) > 1:
            raise RuntimeError(f"{variant.name}: nnunet_thrombus predict failed on some test cases, see {failures}")
        out.mkdir(parents=True, exist_ok=True)
        for case_dir in sorted(p for p in reports.iterdir() if (p / "thrombus.nii.gz").is_file()):
            shutil.copyfile(case_dir / "thrombus.nii.gz", out / f"{case_dir.name}.nii.gz")
        self._say(f"  predicted {variant.trainer} with nnunet_thrombus predict in {cost.seconds:.1f} s")
        return cost

    def reports_dir(self, variant: Variant) -> Path:
        """Where ``nnunet_thrombus predict`` writes a row's per-case folders (report.json: uncertainty, review)."""
        return self.out_dir / "predictions" / f"{variant.name}_reports"

    def run_variant(self, variant: Variant) -> tuple[VariantCost, Path]:
        """Train and predict one variant; returns its costs and its prediction folder.

        Every row's post-processing rule is fitted on its own fold-0 validation predictions. Rows predicted with
        ``nnUNetv2_predict`` get it applied to the test masks afterwards (with the CTA/NCCT of ``imagesTs`` as
        evidence); rows predicted with ``nnunet_thrombus predict`` are fitted first, and predict applies it (with
        the probabilities as further evidence)."""
        self._say(f"[{variant.name}] {variant.label}")
        cost = VariantCost()
        out = self.out_dir / "predictions" / variant.name
        prev = self._stage1(variant, cost) if variant.cascade else None
        train, epochs = self._train(variant.trainer, variant.configuration, variant.plans, variant.seed)
        cost.train_steps.append(train)
        cost.epoch_seconds.append(epochs)
        if variant.thrombus_predict:
            self._postprocess(variant, out, apply=False)
            cost.predict_steps.append(self._predict_thrombus(variant, out))
        else:
            cost.predict_steps.append(self._predict(variant.trainer, variant.configuration, variant.plans,
                                                    variant.seed, out, prev))
            self._postprocess(variant, out)
        return cost, out

    def _postprocess(self, variant: Variant, out: Path, apply: bool = True) -> None:
        """Fit the row's post-processing rule on its own fold-0 validation predictions (``nnunet_thrombus fit-lvo``,
        a subprocess like every other step: it writes ``postprocessing.json``, ``review_rule.json`` and the LVO rule
        into the model folder) and, with ``apply``, apply it to the test masks in ``out`` with the test images as
        evidence. A fit that fails leaves the row without post-processing and says so (its log names the cause)."""
        ws = self.workspace(variant.seed)
        folder = model_folder(ws, self.dataset_name, variant.configuration, variant.trainer, variant.plans)
        try:
            run_measured(ws, ["nnunet_thrombus", "fit-lvo", "-d", self.dataset_id, "-tr", variant.trainer, "-p",
                              variant.plans, "-c", variant.configuration],
                         f"fit_{variant.trainer}_{variant.plans}_{variant.configuration}_seed{variant.seed}",
                         resume=self.resume, **self.step_env)
        except RuntimeError as exc:
            self._say(f"  no post-processing for {variant.name}: {str(exc).splitlines()[0]}")
            return
        pp_file = folder / Postprocessing.FILE
        pp = json.loads(pp_file.read_text()) if pp_file.is_file() else {}
        if not apply:
            self._say(f"  post-processing {pp.get('rule', 'none')} fitted (validation mean Dice "
                      f"{pp.get('validation_mean_dice')}); predict applies it")
            return
        marker = ws.log_dir / f"postprocess_{variant.name}.done"
        predicted = step_record(ws, predict_step(variant.trainer, variant.plans, variant.configuration, variant.seed))
        if self.resume and applied_after(marker, predicted):  # these masks were post-processed before the run stopped
            self._say(f"  post-processing {pp.get('rule', 'none')} already applied (resumed run)")
            return
        n = apply_to_folder(out, pp_file, images_dir=self.ws.raw / self.dataset_name / "imagesTs")
        marker.write_text(f"{n}\n")
        self._say(f"  post-processing {pp.get('rule', 'none')} (validation mean Dice "
                  f"{pp.get('validation_mean_dice')}) changed {n} test mask(s)")


def applied_after(marker: Path, prediction_record: Path) -> bool:
    """True when ``marker`` (a post-processing step's) exists and is not older than ``prediction_record`` (the
    record the prediction step leaves): masks predicted again after the marker was written are not post-processed."""
    if not marker.is_file():
        return False
    return not prediction_record.is_file() or marker.stat().st_mtime_ns >= prediction_record.stat().st_mtime_ns


def prepare_data(raw: Path | None, work: Path, dataset_id: int, budget: Budget, synthetic: int | None,
                 preset: str | None, seed: int, progress: bool, n_test: int | None = None) -> tuple[Path, str]:
    """The raw folder and dataset name to benchmark on; generates a synthetic cohort when asked and missing.

    The cohort has ``synthetic`` cases, ``n_test`` of them (default: the budget's, at most half of the cases) in
    imagesTs/labelsTs. The test part follows :func:`~nnunet_thrombus.synthetic.cohort.write_cohort`'s
    ``benchmark`` profile (clots at every site, isodense and small clots,
    clot-free heads with and without calcified arteries, by recipe rather than by chance).
    """
    raw = Path(raw) if raw else Path(os.environ.get("nnUNet_raw", work / "synth" / "nnUNet_raw"))
    name = find_dataset_name(raw, dataset_id)
    if name is not None:
        return raw, name
    if synthetic is None:
        raise ValueError(f"dataset {dataset_id} not found in nnUNet_raw={raw}; pass --synthetic N (and --test M) "
                         f"to generate a synthetic cohort")
    synthetic = int(synthetic)
    if n_test is None:  # the budget's test part, at most half of the cohort
        n_test = max(1, min(budget.n_test, synthetic // 2))
    if not 1 <= int(n_test) < synthetic:
        raise ValueError(f"--test {n_test}: need 1 <= test cases < --synthetic {synthetic}, so that some cases train")
    spec = CohortSpec(synthetic, seed=seed, preset=preset or budget.preset, dataset_id=dataset_id,
                      n_test=int(n_test), test_profile="benchmark")
    summary = write_cohort(work / "synth", spec, formats=("nifti",), progress=progress)
    missing = summary.get("composition_missing")
    if missing:
        logger.warning(f"the test part misses the benchmark profile's guarantees: {missing}")
    raw = work / "synth" / "nnUNet_raw"
    return raw, find_dataset_name(raw, dataset_id)


def _plans_ready(ws: NnunetWorkspace, dataset_name: str, plans: str) -> bool:
    folder = ws.preprocessed / dataset_name
    return (folder / f"{plans}.json").is_file() and all(
        (folder / f"{plans}_{c}").is_dir() for c in ("3d_fullres", COARSE))


def ensure_plans(ws: NnunetWorkspace, dataset_id: int, dataset_name: str, budget: Budget,
                 vessel: bool = False) -> str:
    """Plan and preprocess unless ``ThrombusPlans`` already exists in the workspace; says which. With ``vessel``,
    also ``ThrombusPlansVessel``: the same ``apply-plans`` call with ``--ct-window vessel``, then its own
    ``nnUNetv2_preprocess`` (the CT window changes the preprocessed intensities). The vessel plans take
    ``ThrombusPlans``' own coarse spacing, so that reused plans made with another ``--coarse-spacing`` still
    differ from them only in the CT window."""
    if _plans_ready(ws, dataset_name, PLANS):
        note = f"reused existing plans {ws.preprocessed / dataset_name / (PLANS + '.json')}"
    else:
        plan_and_preprocess(ws, dataset_id, preset=budget.plan_preset, plans_name=PLANS, features=budget.features,
                            patch_size=budget.patch_size)
        note = "planned and preprocessed in this run"
    if vessel and not _plans_ready(ws, dataset_name, VESSEL_PLANS):
        base = json.loads((ws.preprocessed / dataset_name / f"{PLANS}.json").read_text())
        coarse = [str(v) for v in base["configurations"][COARSE]["spacing"]]
        args = ["nnunet_thrombus", "apply-plans", "-d", dataset_id, "--preset", budget.plan_preset, "-pl",
                VESSEL_PLANS, "--ct-window", "vessel", "--coarse-spacing", *coarse]
        if budget.features:
            args += ["--features", *budget.features]
        if budget.patch_size:
            args += ["--patch-size", *budget.patch_size]
        ws.run(args, "plan_vessel")
        ws.run(["nnUNetv2_preprocess", "-d", dataset_id, "-plans_name", VESSEL_PLANS, "-c", "3d_fullres",
                COARSE, "-np", "1", "1"], "plan_vessel", nnUNet_n_proc_DA="1")
        note += f"; {VESSEL_PLANS} (--ct-window vessel) preprocessed in this run"
    elif vessel:
        note += f"; reused {VESSEL_PLANS}"
    return note


def chains(variants: list[Variant]) -> list[list[Variant]]:
    """Variants grouped so that rows sharing a stage 1 (same stage-1 trainer, plans and seed) run in one chain, in
    the given order; different chains share no model and may run at the same time."""
    groups: dict[tuple, list[Variant]] = {}
    for v in variants:
        key = (v.stage1_trainer, v.plans, v.seed) if v.cascade else (v.name,)
        groups.setdefault(key, []).append(v)
    return list(groups.values())


def parallel_environment(jobs: int) -> dict:
    """Environment for steps that run ``jobs`` at a time. nnU-Net sets torch to one thread per core on the CPU, so
    two steps at once put two OpenMP teams on the same cores, and OpenMP's default busy-waiting then lets each slow
    the other about six-fold (a 3D convolution on this 2-core machine: 3.8 ms alone, 24 ms beside a twin, 5.8 ms
    beside a twin with ``OMP_WAIT_POLICY=PASSIVE``). Passive waiting keeps the cores for work."""
    return {"OMP_WAIT_POLICY": "PASSIVE"} if int(jobs) > 1 else {}


def chain_stages(chain: list[Variant]) -> int:
    """Training stages a chain runs (its shared stage 1 once, then one fine stage per row): the order in which
    ``jobs`` > 1 starts chains, longest first, so that the longest one does not start last."""
    return int(chain[0].cascade) + len(chain)


def train_and_predict(ws: NnunetWorkspace, dataset_id: int, dataset_name: str, budget: Budget, out_dir: Path,
                      variant_names=None, progress: bool = True, jobs: int = 1, resume: bool = False) -> dict:
    """Run every selected variant; returns ``{variant name: (Variant, VariantCost, prediction folder)}`` in table
    order. ``jobs`` > 1 runs that many independent chains (:func:`chains`) at once: faster on spare cores, but
    then the rows' timings include each other's load (the smoke budget does this; timed budgets use 1)."""
    run = BenchmarkRun(ws, dataset_id, dataset_name, budget, out_dir, progress, resume=resume)
    run.step_env = parallel_environment(jobs)
    selected = select_variants(variant_names)

    def run_chain(chain):
        return [(v.name, (v, *run.run_variant(v))) for v in chain]

    if jobs <= 1:
        done = dict(item for chain in chains(selected) for item in run_chain(chain))
    else:
        with ThreadPoolExecutor(max_workers=int(jobs)) as pool:
            ordered = sorted(chains(selected), key=chain_stages, reverse=True)
            done = dict(item for result in pool.map(run_chain, ordered) for item in result)
    return {v.name: done[v.name] for v in selected}
