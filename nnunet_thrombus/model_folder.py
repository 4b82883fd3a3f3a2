"""The one owner of a trained model on disk: names, defaults, trained folds, checks and the files stored with it.

nnU-Net keeps a trained configuration in ``nnUNet_results/<DatasetName>/<trainer>__<plans>__<configuration>/``
with ``fold_k/checkpoint_final.pth``; its ``file_path_utilities`` builds those names and this module asks it
(:func:`stage_identifier`, :func:`stage_folder`). Our cascade is two such folders, ``3d_lowres`` (coarse) and
``3d_cascade_fullres`` (fine), trained with one trainer under one plans identifier. Beside the checkpoints a model
carries:

- its fitted rules in the fine folder (``postprocessing.json``, ``review_rule.json``, ``lvo_thresholds.json``,
  ``roi_threshold.json``), loaded once by :mod:`nnunet_thrombus.calibration.model` into ``CascadeModel.calibration``;
- ``training_recipe.json`` in each ``fold_k`` (written by our trainers when training starts).

Every default of a model's location (trainer, plans, checkpoint) is resolved here once. Torch-free: importing this module
loads neither torch nor nnU-Net's training code.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nnunet_thrombus.atomic_io import write_json

if TYPE_CHECKING:
    from nnunet_thrombus.calibration.model import ModelCalibration

logger = logging.getLogger(__name__)

DEFAULT_TRAINER = "ThrombusCascadeTrainer"
#: plans written by ``apply-plans`` by default; ``-p nnUNetPlans`` when the cascade was added to nnU-Net's own plans
DEFAULT_PLANS = "ThrombusPlans"
COARSE = "3d_lowres"
FINE = "3d_cascade_fullres"
#: vanilla nnU-Net's trainer with the schedule given as flags (training/recipes.py): the baseline of the demo and
#: the benchmark
VANILLA_TRAINER = "nnUNetTrainer_envSchedule"
CHECKPOINT = "checkpoint_final.pth"
N_FOLDS = 5
#: the channels the model must have been trained on (DESIGN.md sec. 3): 0 CTA, 1 NCCT
EXPECTED_CHANNELS = {"0": "CT", "1": "CT"}
RECIPE_FILE = "training_recipe.json"


class ModelError(ValueError):
    """The model folder is missing, incomplete, or trained for other inputs."""


# ---------------------------------------------------------------------------------------------------- names
def stage_identifier(trainer: str = DEFAULT_TRAINER, plans: str = DEFAULT_PLANS, configuration: str = FINE) -> str:
    """``<trainer>__<plans>__<configuration>``, as nnU-Net names a results folder."""
    # nnunetv2 here, not at the top: importing its utilities loads torch, and this module stays torch-free
    from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier

    return convert_trainer_plans_config_to_identifier(trainer, plans, configuration)


def dataset_name(dataset: str | int) -> str:
    """``DatasetXXX_Name`` for an id or a name (``ModelError`` naming the folders searched when unknown)."""
    # nnunetv2 here, not at the top: importing its utilities loads torch, and this module stays torch-free
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        return maybe_convert_to_dataset_name(dataset)
    except RuntimeError as exc:
        raise ModelError(f"dataset {dataset!r} not found under nnUNet_raw / nnUNet_preprocessed / nnUNet_results "
                         f"({exc}); check the id or pass -m MODEL_FOLDER") from exc


def results_root() -> Path:
    """``$nnUNet_results`` (``ModelError`` when unset)."""
    results = os.environ.get("nnUNet_results")
    if not results:
        raise ModelError("nnUNet_results is not set: export it (see 'nnunet_thrombus env') or pass -m MODEL_FOLDER")
    return Path(results)


def stage_folder(dataset: str | int, configuration: str, trainer: str = DEFAULT_TRAINER,
                 plans: str = DEFAULT_PLANS, fold=None) -> Path:
    """``nnUNet_results/<DatasetName>/<trainer>__<plans>__<configuration>[/fold_k]`` (nnU-Net's
    ``get_output_folder``); need not exist."""
    results_root()  # a clear error when unset
    # nnunetv2 here, not at the top: importing its utilities loads torch, and this module stays torch-free
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    return Path(get_output_folder(dataset_name(dataset), trainer, plans, configuration, fold))


def raw_dataset_folder(dataset: str | int) -> Path:
    """``nnUNet_raw/<DatasetName>`` (the training images and labels the fits read); ``ModelError`` when unset."""
    raw = os.environ.get("nnUNet_raw")
    if not raw:
        raise ModelError("nnUNet_raw is not set: export it (see 'nnunet_thrombus env --raw')")
    return Path(raw) / dataset_name(dataset)


def dataset_results_folder(dataset: str | int) -> Path:
    """``nnUNet_results/<DatasetName>``, which must exist (``ModelError`` with the fix otherwise)."""
    folder = results_root() / dataset_name(dataset)
    if not folder.is_dir():
        raise ModelError(f"no trained model for {folder.name}: {folder} does not exist; train both stages first "
                         f"or pass -m MODEL_FOLDER")
    return folder


# ---------------------------------------------------------------------------------------------------- folds
def trained_folds(folder, checkpoint: str = CHECKPOINT) -> list:
    """Folds (ints, and ``'all'``) under ``folder`` that have ``checkpoint``, sorted as nnU-Net lists them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for sub in sorted(folder.iterdir()):
        if sub.name.startswith("fold_") and (sub / checkpoint).is_file():
            tag = sub.name[len("fold_"):]
            out.append(int(tag) if tag.isdigit() else tag)
    return out


def select_folds(folder, folds=None, checkpoint: str = CHECKPOINT) -> tuple:
    """``folds`` (None = every trained fold) checked against the checkpoints present; ``ModelError`` naming the
    missing folds and the available ones."""
    have = trained_folds(folder, checkpoint)
    use = tuple(have) if folds is None else tuple(int(f) if str(f).isdigit() else f for f in folds)
    missing = [f for f in use if f not in have]
    if not use or missing:
        raise ModelError(f"{Path(folder).name}: no {checkpoint} for fold(s) {[str(f) for f in missing] or '(any)'} "
                         f"(available: {[str(f) for f in have] or 'none'}); finish training or choose folds with -f")
    return use


def validation_cases(stage) -> dict:
    """{fold tag: [case ids]} from nnU-Net's ``fold_k/validation/<case>.nii.gz`` in ``stage`` (folds with no
    validation predictions are left out): the cases the fits (``fit-lvo``, ``fit-roi``) may use."""
    out = {}
    for fold_dir in sorted(Path(stage).glob("fold_*")):
        cases = sorted(p.name[: -len(".nii.gz")] for p in (fold_dir / "validation").glob("*.nii.gz"))
        if cases:
            out[fold_dir.name[len("fold_"):]] = cases
    return out


def check_channels(stage) -> None:
    """``ModelError`` unless ``stage/dataset.json`` lists the two CT channels (CTA, NCCT)."""
    path = Path(stage) / "dataset.json"
    if not path.is_file():
        raise ModelError(f"{stage} has no dataset.json: incomplete model folder; copy the whole results folder")
    channels = json.loads(path.read_text()).get("channel_names", {})
    if {str(k): v for k, v in channels.items()} != EXPECTED_CHANNELS:
        raise ModelError(f"{Path(stage).name} was trained on channels {channels}, this pipeline feeds "
                         f"{EXPECTED_CHANNELS} (CTA, NCCT): use a model trained by nnunet_thrombus on NCCT + CTA")


def check_stage(stage, folds=None, checkpoint: str = CHECKPOINT) -> tuple:
    """Stage folder present with ``plans.json``, the CT channels and checkpoints for ``folds``; returns the folds."""
    stage = Path(stage)
    if not (stage / "plans.json").is_file():
        raise ModelError(f"model folder {stage} is missing or incomplete (no plans.json); train it or pass -m with "
                         f"an nnU-Net results folder that contains it")
    check_channels(stage)
    return select_folds(stage, folds, checkpoint)


# ---------------------------------------------------------------------------------------------- recipes
def write_recipe(fold_dir, recipe: dict) -> Path:
    """Write ``fold_dir/training_recipe.json`` atomically."""
    Path(fold_dir).mkdir(parents=True, exist_ok=True)
    return write_json(Path(fold_dir) / RECIPE_FILE, recipe)


def load_recipe(stage, folds=None) -> dict | None:
    """The training recipe of ``stage``: the ``training_recipe.json`` of the first of ``folds`` (None = every
    trained fold) that has one, with ``folds_differ`` True when the folds were trained with different recipes;
    None when no fold has one (a model trained before recipes were written, or by a trainer that writes none)."""
    stage = Path(stage)
    tags = folds if folds is not None else trained_folds(stage)
    recipes = []
    for f in tags:
        path = stage / f"fold_{f}" / RECIPE_FILE
        if path.is_file():
            try:
                recipes.append(json.loads(path.read_text()))
            except ValueError as exc:
                raise ModelError(f"{path} is not valid JSON ({exc}); delete it or retrain") from exc
    if not recipes:
        return None
    first = dict(recipes[0])
    first["folds_differ"] = any(_comparable(r) != _comparable(recipes[0]) for r in recipes[1:])
    return first


def _comparable(recipe: dict) -> dict:
    return {k: v for k, v in recipe.items() if k not in ("fold", "written")}


def _mirroring_label(recipe: dict) -> str:
    """``mirroring`` (test-time and augmentation), ``no mirroring``, or, for a recipe that mirrors in augmentation
    only, e.g. ``no test-time mirroring, left-right mirror augmentation``."""
    if recipe.get("mirroring"):
        return "mirroring"
    augment = recipe.get("mirror_augment")
    if augment in (None, "off") or not recipe.get("augmentation_mirror_axes", True):
        return "no mirroring"
    return f"no test-time mirroring, {augment} mirror augmentation"


def recipe_label(recipe: dict | None) -> str:
    """One line naming a recipe, e.g. ``cpuShort: AdamW lr 0.001 poly 0.9, 8 x 100 it, no mirroring``; with
    run-time overrides (``THROMBUS_*`` variables or ``nnunet_thrombus train`` flags) the name says so and the
    overrides follow in brackets."""
    if not recipe:
        return "unknown (no training_recipe.json)"
    lr = recipe.get("initial_lr")
    lr = f"{lr:g}" if isinstance(lr, (int, float)) else "?"
    overrides = recipe.get("overrides") or {}
    text = (f"{recipe.get('name', '?')}{' + overrides' if overrides else ''}: "
            f"{recipe.get('optimizer', '?')} lr {lr} {recipe.get('lr_schedule', '')}, "
            f"{recipe.get('num_epochs', '?')} x {recipe.get('num_iterations_per_epoch', '?')} it, "
            f"{_mirroring_label(recipe)}")
    if overrides:
        text += " (" + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())) + ")"
    if recipe.get("folds_differ"):
        text += " [folds trained with different recipes]"
    return text


# ---------------------------------------------------------------------------------------- the trained cascade
@dataclass
class CascadeModel:
    """One trained cascade: both stage folders and what is stored with them."""

    root: Path
    trainer: str
    plans: str
    coarse_dir: Path
    fine_dir: Path
    folds: tuple
    calibration: ModelCalibration
    recipe: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """JSON-ready description for ``report.json`` (folder names only, no absolute paths)."""
        return {"model": self.root.name, "trainer": self.trainer, "plans": self.plans,
                "coarse": self.coarse_dir.name, "fine": self.fine_dir.name,
                "lvo_rule_source": self.calibration.sources["lvo"],
                "postprocessing": self.calibration.postprocessing.rule,
                "postprocessing_source": self.calibration.sources["postprocessing"], "recipe": self.recipe}


def resolve_cascade(dataset: str | int | None = None, model_folder=None, folds=None,
                    trainer: str = DEFAULT_TRAINER, plans: str = DEFAULT_PLANS,
                    checkpoint: str = CHECKPOINT) -> CascadeModel:
    """Both stage folders from ``dataset`` (under ``nnUNet_results``) or ``model_folder`` (a copied results folder),
    exactly one; checked: present, trained on the two CT channels, checkpoints for ``folds`` in each stage (None =
    every trained fold of that stage). Fitted rules as in the module docstring; ``recipe`` holds each stage's
    recipe and a one-line ``label`` of the fine stage's."""
    if (dataset is None) == (model_folder is None):
        raise ValueError(f"give exactly one of dataset and model_folder, got {dataset=} {model_folder=}")
    root = dataset_results_folder(dataset) if dataset is not None else Path(model_folder)
    if not root.is_dir():
        raise ModelError(f"model folder {root} does not exist")
    stages = {}
    for config in (FINE, COARSE):
        # a variant may reuse another trainer's stage 1 (``_noCoarseFeatures``, ``_patchContext``): the fine stage's
        # training_recipe.json names it
        name = trainer if config == FINE else stage1_trainer(stages[FINE], trainer)
        stage = root / stage_identifier(name, plans, config)
        if not stage.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir() and "__" in p.name)
            hint = _hint(found, trainer, plans)
            raise ModelError(f"{root} lacks {stage.name} (found {found or 'nothing'}){hint}")
        stages[config] = stage
    use = {config: check_stage(stages[config], folds, checkpoint) for config in (COARSE, FINE)}
    # the calibration package loads numpy/scipy/SimpleITK; the commands import this module for its names when
    # building --help, which must stay instant
    from nnunet_thrombus.calibration.artifact import CalibrationFileError
    from nnunet_thrombus.calibration.model import load_model_calibration

    try:
        calibration = load_model_calibration(stages[FINE], root)
    except CalibrationFileError as exc:
        raise ModelError(str(exc)) from exc
    recipe = {config: load_recipe(stages[config], use[config]) for config in (COARSE, FINE)}
    recipe["label"] = recipe_label(recipe[FINE])
    return CascadeModel(root=root, trainer=trainer, plans=plans, coarse_dir=stages[COARSE], fine_dir=stages[FINE],
                        folds=use[FINE], calibration=calibration, recipe=recipe)


def stage1_trainer(fine_stage, trainer: str) -> str:
    """The trainer whose ``3d_lowres`` folder the cascade stage in ``fine_stage`` was trained on: ``stage1_trainer``
    of its ``training_recipe.json`` (any fold), else ``trainer`` itself."""
    for path in sorted(Path(fine_stage).glob(f"fold_*/{RECIPE_FILE}")):
        try:
            name = json.loads(path.read_text()).get("stage1_trainer")
        except ValueError:
            continue
        if name:
            return name
    return trainer


def _hint(found: list[str], trainer: str, plans: str) -> str:
    """The -tr/-p that would match what is there."""
    pairs = sorted({tuple(name.split("__")[:2]) for name in found if name.endswith("__" + FINE)})
    if pairs:
        options = "; ".join(f"-tr {t} -p {p}" for t, p in pairs)
        return f"; trained cascades here: {options}"
    return "; train both cascade stages or give the folder that holds them"


# ------------------------------------------------------------------------------------------ nnU-Net glue
@contextlib.contextmanager
def quiet_nnunet():
    """Keep nnU-Net's chatter while loading a model ("Searching in external trainer paths ...", "Inspecting
    module ...") out of the console: stdout is captured, and logged as an error only if loading fails; stderr
    (warnings, errors) passes through."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    except BaseException:
        text = buf.getvalue()
        if text:
            logger.error(f"nnU-Net's output before the failure:\n{text.rstrip()}")
        raise


__all__ = ["DEFAULT_TRAINER", "DEFAULT_PLANS", "COARSE", "FINE", "CHECKPOINT", "N_FOLDS",
           "EXPECTED_CHANNELS", "RECIPE_FILE", "ModelError",
           "stage_identifier", "dataset_name", "results_root", "stage_folder", "raw_dataset_folder", "dataset_results_folder",
           "trained_folds", "select_folds", "validation_cases", "check_channels", "check_stage", "write_recipe", "load_recipe",
           "recipe_label", "CascadeModel", "resolve_cascade", "stage1_trainer", "quiet_nnunet"]
