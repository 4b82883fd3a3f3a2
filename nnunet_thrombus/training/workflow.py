"""Run nnU-Net's own commands (plan, preprocess, train, predict) as subprocesses, with our trainer findable.

Used by the demo, the benchmark and the tests, so that what they run is exactly what a user types. Each call
appends the command's output to a log file and, on failure, raises ``RuntimeError`` with the command and the last
lines of that log.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nnunet_thrombus.model_folder import COARSE, DEFAULT_PLANS, DEFAULT_TRAINER, FINE, stage_identifier
from nnunet_thrombus.nnunet_env import nnunet_environment
from nnunet_thrombus.training.epoch_progress import UNBUFFERED, EpochProgress, follow_log
from nnunet_thrombus.training.overrides import ENV_VARIABLES, TrainingSettings

BIN = Path(sys.executable).parent


@dataclass
class NnunetWorkspace:
    """The three nnU-Net folders of one run, and where command output is logged."""

    raw: Path
    preprocessed: Path
    results: Path
    log_dir: Path

    @classmethod
    def under(cls, root: str | os.PathLike, raw: str | os.PathLike | None = None) -> "NnunetWorkspace":
        root = Path(root)
        ws = cls(Path(raw) if raw else root / "nnUNet_raw", root / "nnUNet_preprocessed", root / "nnUNet_results",
                 root / "logs")
        for p in (ws.raw, ws.preprocessed, ws.results, ws.log_dir):
            p.mkdir(parents=True, exist_ok=True)
        return ws

    def env(self, **extra: str) -> dict:
        env = nnunet_environment(self.raw, self.preprocessed, self.results, cpu_friendly=True)
        for var in ENV_VARIABLES.values():  # a run's settings are its arguments, not the caller's variables
            if var != ENV_VARIABLES["context_cache_gb"]:
                env.pop(var, None)
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def run(self, args: list[str], log_name: str, timeout: float | None = None, on_line=None,
            **extra_env: str) -> float:
        """Run ``args`` (first item a console script of this environment); returns seconds taken. ``on_line``: called
        with each output line while the command runs (e.g. :class:`EpochProgress`); the command then runs with
        unbuffered output."""
        exe = BIN / args[0]
        cmd = [str(exe) if exe.exists() else args[0]] + [str(a) for a in args[1:]]
        log = self.log_dir / f"{log_name}.log"
        t0 = time.perf_counter()
        if on_line is not None:
            extra_env = {**UNBUFFERED, **extra_env}
        with open(log, "a") as fh:
            fh.write(f"$ {' '.join(cmd)}\n")
            fh.flush()
            with follow_log(log, on_line):
                proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env(**extra_env),
                                      timeout=timeout)
        if proc.returncode != 0:
            raise command_failure(cmd, proc.returncode, log)
        return time.perf_counter() - t0


_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception): .+")


def command_failure(cmd: list[str], returncode: int, log: Path) -> RuntimeError:
    """The error for a failed command whose output went to ``log``: the distinct exception lines it printed (the
    cause is among them; nnU-Net's worker processes print secondary tracebacks around it) and the log's last 25
    lines."""
    lines = log.read_text(errors="replace").splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("$ ")]
    own = [line.strip() for line in (lines[starts[-1]:] if starts else lines)]
    errors = list(dict.fromkeys(line for line in own if _ERROR_LINE.match(line)))[:6]
    listed = "".join(f"  {line}\n" for line in errors)
    return RuntimeError(f"command failed ({returncode}): {' '.join(cmd)}\n"
                        + (f"errors it printed:\n{listed}" if errors else "")
                        + f"log {log}, last lines:\n{''.join(lines[-25:])}")


def plan_and_preprocess(ws: NnunetWorkspace, dataset_id: int, preset: str = "cpu", plans_name: str = DEFAULT_PLANS,
                        features=None, patch_size=None, ct_window: str = "foreground",
                        configurations=("3d_fullres", COARSE), coarse_spacing: str = "paper") -> float:
    """Fingerprint + nnU-Net's planner, then our cascade plans (``apply-plans``), then preprocessing.
    ``coarse_spacing``: ``apply-plans --coarse-spacing`` ("paper", "ratio", or "Z Y X" in mm)."""
    t = ws.run(["nnUNetv2_extract_fingerprint", "-d", dataset_id, "-np", "1", "--verify_dataset_integrity"],
               "plan", nnUNet_n_proc_DA="1")
    t += ws.run(["nnUNetv2_plan_experiment", "-d", dataset_id], "plan", nnUNet_n_proc_DA="1")
    args = ["nnunet_thrombus", "apply-plans", "-d", dataset_id, "--preset", preset, "-p", plans_name,
            "--ct-window", ct_window, "--coarse-spacing", *str(coarse_spacing).split()]
    if features:
        args += ["--features", *features]
    if patch_size:
        args += ["--patch-size", *patch_size]
    t += ws.run(args, "plan")
    t += ws.run(["nnUNetv2_preprocess", "-d", dataset_id, "-plans_name", plans_name, "-c", *configurations,
                 "-np", *(["1"] * len(configurations))], "plan", nnUNet_n_proc_DA="1")
    return t


def train_arguments(settings: TrainingSettings) -> list[str]:
    """``nnunet_thrombus train`` flags for ``settings`` (only the fields that are set)."""
    flags = {"num_epochs": "--epochs", "num_iterations_per_epoch": "--iters",
             "num_val_iterations_per_epoch": "--val-iters", "save_every": "--save-every",
             "oversample_foreground_percent": "--oversample-fg", "mirror_augment": "--mirror-augment",
             "optimizer": "--optimizer", "lr": "--lr", "seed": "--seed"}
    args = []
    for name, value in settings.given().items():
        if name == "mirroring":
            args.append("--mirroring" if value else "--no-mirroring")
        elif name in flags:
            args += [flags[name], str(value)]
        else:
            raise ValueError(f"{name} is not a training flag (a machine setting: set it in the environment)")
    return args


def short_schedule(epochs: int = 1, iters: int = 10, val_iters: int = 2, oversample_fg: float | None = None,
                   mirroring: bool = False, optimizer: str | None = None, lr: float | None = None,
                   seed: int | None = None) -> TrainingSettings:
    """The settings of a short run: ``epochs`` x ``iters``, a checkpoint at the end only. Short runs train without
    test-time mirroring by default: nnU-Net's final validation with 8-fold mirroring otherwise dominates a CPU
    run."""
    return TrainingSettings(num_epochs=epochs, num_iterations_per_epoch=iters, num_val_iterations_per_epoch=val_iters,
                            save_every=max(1, epochs), oversample_foreground_percent=oversample_fg,
                            mirroring=mirroring, optimizer=optimizer, lr=lr, seed=seed)


def train(ws: NnunetWorkspace, dataset_id: int, configuration: str, fold: int | str = 0,
          trainer: str = DEFAULT_TRAINER, plans_name: str = DEFAULT_PLANS, schedule: TrainingSettings | None = None,
          device: str = "cpu", extra_args=()) -> float:
    """``nnunet_thrombus train`` (``nnUNetv2_train`` with schedule flags) under ``schedule`` (None: a one-epoch
    :func:`short_schedule`); our trainers and the vanilla baseline ``nnUNetTrainer_envSchedule`` take it. Returns
    seconds taken."""
    settings = short_schedule() if schedule is None else schedule
    return ws.run(["nnunet_thrombus", "train", dataset_id, configuration, fold, "-tr", trainer, "-p", plans_name,
                   "-device", device, *train_arguments(settings), *extra_args],
                  f"train_{trainer}_{configuration}_{fold}",
                  on_line=EpochProgress(f"{trainer} {configuration} fold {fold}", settings.num_epochs or 1))


def export_next_stage(ws: NnunetWorkspace, dataset_id: int, trainer: str = DEFAULT_TRAINER,
                      plans_name: str = DEFAULT_PLANS) -> float:
    return ws.run(["nnunet_thrombus", "export-next-stage", "-d", dataset_id, "-tr", trainer, "-p", plans_name],
                  f"export_{trainer}")


def train_cascade(ws: NnunetWorkspace, dataset_id: int, fold: int = 0, trainer: str = DEFAULT_TRAINER,
                  plans_name: str = DEFAULT_PLANS, coarse: TrainingSettings | None = None,
                  fine: TrainingSettings | None = None, device: str = "cpu") -> dict:
    """Stage 1 under ``coarse``, ``predicted_next_stage`` for every training case, stage 2 under ``fine`` (None: a
    one-epoch :func:`short_schedule`). Returns seconds per step."""
    times = {"coarse": train(ws, dataset_id, COARSE, fold, trainer, plans_name, coarse, device)}
    times["export_next_stage"] = export_next_stage(ws, dataset_id, trainer, plans_name)
    times["fine"] = train(ws, dataset_id, FINE, fold, trainer, plans_name, fine, device)
    return times


def model_folder(ws: NnunetWorkspace, dataset_name: str, configuration: str, trainer: str = DEFAULT_TRAINER,
                 plans_name: str = DEFAULT_PLANS) -> Path:
    """``ws.results/<dataset_name>/<trainer>__<plans>__<configuration>`` (named by :mod:`model_folder`)."""
    return ws.results / dataset_name / stage_identifier(trainer, plans_name, configuration)
