"""Finding and checking a trained cascade: ``-d DATASET`` (under ``nnUNet_results``) or ``-m FOLDER`` (shipped copy).

A model folder holds the two stage folders ``<trainer>__<plans>__3d_lowres`` and
``<trainer>__<plans>__3d_cascade_fullres`` (an nnU-Net ``Dataset`` results folder, copied as is). Checks run before
any case is read so a wrong model fails once, clearly, instead of once per case.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from nnunet_thrombus.inference import DEFAULT_ROI_THRESHOLD
from nnunet_thrombus.inference.postprocessing import FILE as POSTPROCESSING_FILE
from nnunet_thrombus.inference.postprocessing import Postprocessing
from nnunet_thrombus.measure.lvo import LVOThresholds

DEFAULT_TRAINER = "ThrombusCascadeTrainer"
DEFAULT_PLANS = "ThrombusPlans"
#: the channels the model must have been trained on (DESIGN.md sec. 3)
EXPECTED_CHANNELS = {"0": "CT", "1": "CT"}
LVO_FILE = "lvo_thresholds.json"


class ModelError(ValueError):
    """The model folder is missing, incomplete, or trained for other inputs."""


@dataclass
class ModelFiles:
    """Resolved stage folders of one trained cascade and its stored LVO rule."""

    root: Path
    coarse_dir: Path
    fine_dir: Path
    lvo_thresholds: LVOThresholds
    lvo_source: str
    postprocessing: Postprocessing = Postprocessing()
    postprocessing_source: str = "default"
    roi_threshold: float = DEFAULT_ROI_THRESHOLD
    roi_threshold_source: str = "default"

    def describe(self) -> dict:
        """JSON-ready description (folder names only, no absolute paths)."""
        return {"model": self.root.name, "coarse": self.coarse_dir.name, "fine": self.fine_dir.name,
                "lvo_rule_source": self.lvo_source, "postprocessing": self.postprocessing.rule,
                "postprocessing_source": self.postprocessing_source}


def dataset_results_folder(dataset: str | int) -> Path:
    """``nnUNet_results/<DatasetName>`` for a dataset id or name (``ModelError`` when unset or absent)."""
    results = os.environ.get("nnUNet_results")
    if not results:
        raise ModelError("nnUNet_results is not set: export it (see 'nnunet_thrombus env') or pass -m MODEL_FOLDER")
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        name = maybe_convert_to_dataset_name(dataset)
    except RuntimeError as exc:
        raise ModelError(f"dataset {dataset!r} not found under nnUNet_results={results} or nnUNet_raw/"
                         f"nnUNet_preprocessed ({exc}); train it first or pass -m MODEL_FOLDER") from exc
    folder = Path(results) / name
    if not folder.is_dir():
        raise ModelError(f"no trained model for {name}: {folder} does not exist; train both stages first "
                         f"or pass -m MODEL_FOLDER")
    return folder


def _check_channels(stage: Path) -> None:
    path = stage / "dataset.json"
    if not path.is_file():
        raise ModelError(f"{stage} has no dataset.json: incomplete model folder; copy the whole results folder")
    channels = json.loads(path.read_text()).get("channel_names", {})
    if {str(k): v for k, v in channels.items()} != EXPECTED_CHANNELS:
        raise ModelError(f"{stage.name} was trained on channels {channels}, this pipeline feeds "
                         f"{EXPECTED_CHANNELS} (CTA, NCCT): use a model trained by nnunet_thrombus on NCCT + CTA")


def _check_checkpoints(stage: Path, folds, checkpoint: str) -> None:
    from nnunet_thrombus.training.stage_one import trained_folds

    available = [str(f) for f in trained_folds(str(stage), checkpoint)]
    wanted = [str(f) for f in folds] if folds else available
    missing = [f for f in wanted if f not in available]
    if not wanted or missing:
        raise ModelError(f"{stage.name}: no {checkpoint} for fold(s) {missing or '(any)'} (available: "
                         f"{available or 'none'}); finish training or choose folds with -f")


def resolve_model(dataset: str | int | None = None, model_folder: str | os.PathLike | None = None, folds=None,
                  trainer: str = DEFAULT_TRAINER, plans: str = DEFAULT_PLANS,
                  checkpoint: str = "checkpoint_final.pth") -> ModelFiles:
    """Stage folders from ``dataset`` or ``model_folder`` (exactly one), checked: both stages present, trained on
    the two CT channels, checkpoints for ``folds`` (None = every trained fold). LVO thresholds from
    ``lvo_thresholds.json`` in the fine (then the model) folder, else the built-in defaults; mask post-processing
    from ``postprocessing.json`` in the fine folder, else none; the ROI threshold from ``roi_threshold.json`` in
    the fine folder (``fit-roi``), else ``DEFAULT_ROI_THRESHOLD``."""
    if (dataset is None) == (model_folder is None):
        raise ValueError(f"give exactly one of dataset and model_folder, got {dataset=} {model_folder=}")
    root = dataset_results_folder(dataset) if dataset is not None else Path(model_folder)
    if not root.is_dir():
        raise ModelError(f"model folder {root} does not exist")
    stages = {}
    for config in ("3d_lowres", "3d_cascade_fullres"):
        stage = root / f"{trainer}__{plans}__{config}"
        if not stage.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise ModelError(f"{root} lacks {stage.name} (found {found or 'nothing'}); train both cascade stages "
                             f"or give the folder that holds them")
        _check_channels(stage)
        _check_checkpoints(stage, folds, checkpoint)
        stages[config] = stage
    rule, source = LVOThresholds(), "default"
    for cand in (stages["3d_cascade_fullres"] / LVO_FILE, root / LVO_FILE):
        if cand.is_file():
            try:
                rule, source = LVOThresholds.load(cand), f"{cand.parent.name}/{LVO_FILE}"
            except (ValueError, TypeError) as exc:
                raise ModelError(f"{cand} is not a valid LVO threshold file ({exc})") from exc
            break
    post, post_source = Postprocessing(), "default"
    cand = stages["3d_cascade_fullres"] / POSTPROCESSING_FILE
    if cand.is_file():
        try:
            post, post_source = Postprocessing.load(cand), f"{cand.parent.name}/{POSTPROCESSING_FILE}"
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelError(f"{cand} is not a valid post-processing file ({exc})") from exc
    from nnunet_thrombus.inference.roi_threshold_fit import FILE as ROI_FILE
    from nnunet_thrombus.inference.roi_threshold_fit import load_threshold

    try:
        roi_t = load_threshold(stages["3d_cascade_fullres"])
    except ValueError as exc:
        raise ModelError(f"{exc}; run 'nnunet_thrombus fit-roi' again or delete the file") from exc
    roi_source = "default" if roi_t is None else f"{stages['3d_cascade_fullres'].name}/{ROI_FILE}"
    return ModelFiles(root=root, coarse_dir=stages["3d_lowres"], fine_dir=stages["3d_cascade_fullres"],
                      lvo_thresholds=rule, lvo_source=source, postprocessing=post, postprocessing_source=post_source,
                      roi_threshold=DEFAULT_ROI_THRESHOLD if roi_t is None else roi_t, roi_threshold_source=roi_source)


def load_predictor(model: ModelFiles, folds=None, device: str = "cpu", use_mirroring: bool = True,
                   roi_restrict: bool = True, checkpoint: str = "checkpoint_final.pth",
                   roi_threshold: float | None = None):
    """``ThrombusCascadePredictor`` for ``model`` (sets ``nnUNet_extTrainer`` so nnU-Net finds our trainer).
    ``roi_threshold`` None: the model's own (``model.roi_threshold``)."""
    roi_threshold = model.roi_threshold if roi_threshold is None else roi_threshold
    from nnunet_thrombus.nnunet_env import ext_trainer_value

    os.environ["nnUNet_extTrainer"] = ext_trainer_value(os.environ.get("nnUNet_extTrainer"))
    from nnunet_thrombus.inference.cascade_predictor import ThrombusCascadePredictor

    try:
        predictor = ThrombusCascadePredictor(str(model.coarse_dir), str(model.fine_dir), folds=folds, device=device,
                                             use_mirroring=use_mirroring, roi_restrict=roi_restrict,
                                             roi_threshold=roi_threshold, checkpoint_name=checkpoint)
        for stage, config in ((predictor.coarse, "3d_lowres"), (predictor.fine, "3d_cascade_fullres")):
            # nnU-Net builds the network named in the checkpoint, so a checkpoint of the other stage loads silently
            if stage.configuration_manager.configuration != stage.plans_manager.get_configuration(config).configuration:
                raise ModelError(f"checkpoint in {model.root} does not match its plans: the {config} folder holds "
                                 f"a checkpoint trained as another configuration; copy the right checkpoint")
            # nnU-Net loads only the first fold up front: load every fold once to catch mismatched weights
            net = getattr(stage.network, "_orig_mod", stage.network)
            for params in stage.list_of_parameters[1:]:
                net.load_state_dict(params)
            net.load_state_dict(stage.list_of_parameters[0])
        return predictor
    except (RuntimeError, KeyError) as exc:  # state dict does not fit the architecture in plans.json
        raise ModelError(f"checkpoint in {model.root} does not match its plans ({type(exc).__name__}: "
                         f"{str(exc)[:300]}); the model folder is corrupt or mixed from different trainings") from exc
