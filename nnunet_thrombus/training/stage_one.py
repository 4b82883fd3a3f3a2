"""Stage-1 (coarse) results the fine stage depends on: checkpoints, ``predicted_next_stage``, and regenerating it.

nnU-Net writes stage-1 predictions for the next stage only for the validation cases of each trained fold, so a fine
stage needs all five stage-1 folds, and a missing one surfaces as a bare ``FileNotFoundError`` deep in the data
loader. Here the fine stage checks first and names the missing folds and the commands that fix it, and
:func:`export_next_stage` rebuilds ``predicted_next_stage`` from whatever stage-1 checkpoints exist.
"""
from __future__ import annotations

import json
import logging
import os
import time
from os.path import isdir, isfile, join

import numpy as np

from nnunet_thrombus.atomic_io import write_json
from nnunet_thrombus.model_folder import CHECKPOINT, COARSE, DEFAULT_PLANS, DEFAULT_TRAINER, N_FOLDS
from nnunet_thrombus.model_folder import dataset_name as _dataset_name
from nnunet_thrombus.model_folder import quiet_nnunet, stage_folder
from nnunet_thrombus.model_folder import trained_folds as _trained_folds

logger = logging.getLogger(__name__)

_SEG_ENDINGS = (".b2nd", ".npz", ".npy")


def stage1_folder(plans_manager, previous_stage: str, trainer_name: str) -> str:
    return str(stage_folder(plans_manager.dataset_name, previous_stage, trainer_name, plans_manager.plans_name))


def predicted_next_stage_folder(plans_manager, previous_stage: str, next_stage: str, trainer_name: str) -> str:
    return join(stage1_folder(plans_manager, previous_stage, trainer_name), "predicted_next_stage", next_stage)


def trained_folds(folder: str, checkpoint_name: str = CHECKPOINT) -> list:
    """Folds (ints, and 'all') under ``folder`` that have ``checkpoint_name`` (:func:`model_folder.trained_folds`)."""
    return _trained_folds(folder, checkpoint_name)


def _dataset_id(plans_manager) -> str:
    name = plans_manager.dataset_name
    return str(int(name[len("Dataset"):len("Dataset") + 3])) if name.startswith("Dataset") else name


def fix_commands(plans_manager, previous_stage: str, trainer_name: str, folds) -> str:
    ds = _dataset_id(plans_manager)
    plans = plans_manager.plans_name
    lines = [f"  nnUNetv2_train {ds} {previous_stage} {f} -tr {trainer_name} -p {plans}" for f in folds]
    lines.append(f"  or, from the stage-1 folds you already have: nnunet_thrombus export-next-stage -d {ds} "
                 f"-tr {trainer_name} -p {plans}")
    return "\n".join(lines)


def stage1_checkpoint(plans_manager, previous_stage: str, fold, trainer_name: str, this_stage: str) -> str:
    """Path of the same fold's stage-1 ``checkpoint_final.pth``; ``FileNotFoundError`` with the fix if absent."""
    folder = stage1_folder(plans_manager, previous_stage, trainer_name)
    path = join(folder, f"fold_{fold}", CHECKPOINT)
    if not isfile(path):
        have = trained_folds(folder)
        raise FileNotFoundError(
            f"{this_stage} fold {fold} needs the coarse stage's weights, but {path} does not exist "
            f"(trained stage-1 folds: {have or 'none'}). Train it first:\n"
            f"  nnUNetv2_train {_dataset_id(plans_manager)} {previous_stage} {fold} -tr {trainer_name} "
            f"-p {plans_manager.plans_name}")
    return path


def missing_predictions(folder: str, identifiers) -> list[str]:
    present = set()
    if isdir(folder):
        for name in os.listdir(folder):
            for ending in _SEG_ENDINGS:
                if name.endswith(ending):
                    present.add(name[: -len(ending)])
    return sorted(i for i in identifiers if i not in present)


def require_previous_stage_predictions(plans_manager, previous_stage: str, this_stage: str, trainer_name: str,
                                       identifiers, folder: str) -> None:
    """Raise ``FileNotFoundError`` naming the missing cases, the untrained stage-1 folds and the fix."""
    missing = missing_predictions(folder, identifiers)
    if not missing:
        return
    s1 = stage1_folder(plans_manager, previous_stage, trainer_name)
    have = [f for f in trained_folds(s1) if f != "all"]
    need = [f for f in range(N_FOLDS) if f not in have]
    shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    raise FileNotFoundError(
        f"{this_stage} needs stage-1 ({previous_stage}) predictions of every training case in {folder}; "
        f"{len(missing)} are missing ({shown}). nnU-Net writes them when a stage-1 fold finishes its validation, "
        f"so all {N_FOLDS} folds are needed; trained: {have or 'none'}, missing folds: {need}. Fix:\n"
        + fix_commands(plans_manager, previous_stage, trainer_name, need))


def coarse_to_fine_ratio(plans_manager, previous_stage: str, next_stage: str) -> tuple[float, ...]:
    """Coarse / fine spacing per axis (z, y, x), as the fine network's ``coarse_spacing_ratio``."""
    coarse = plans_manager.get_configuration(previous_stage).spacing
    fine = plans_manager.get_configuration(next_stage).spacing
    return tuple(float(c) / float(f) for c, f in zip(coarse, fine))


def has_whole_head_pass(network) -> bool:
    """Whether ``network`` (unwrapped) is a stage-1 network with a whole-head pass (our ThrombusCoarseUNet)."""
    return hasattr(network, "forward_with_features") and hasattr(network, "total_stride")


def whole_head_next_stage_map(network, parameters: list, images, ratio, device) -> np.ndarray:
    """The fine stage's segmentation channel for one case, exactly as ``predict`` computes it.

    network: the stage-1 network (a ThrombusCoarseUNet); parameters: one state dict per fold to average (the
    held-out fold alone for an out-of-fold map); images: (C_img, *S) the case's fine (``3d_cascade_fullres``)
    preprocessed image channels; ratio: :func:`coarse_to_fine_ratio`. One whole-head pass per fold
    (:func:`~nnunet_thrombus.networks.coarse_context.run_coarse_pass`), fold-mean probability resized to ``S`` and
    thresholded at 0.5 -> (*S) uint8.
    """
    import torch

    from nnunet_thrombus.networks.coarse_context import coarse_segmentation_on_fine_grid, run_coarse_passes

    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)[None].to(device)
    with torch.no_grad():
        contexts = run_coarse_passes(network, parameters, x, ratio)
    return coarse_segmentation_on_fine_grid(contexts, x.shape[2:]).numpy()


def write_whole_head_next_stage(network, parameters: list, plans_manager, previous_stage: str, keys,
                                output_folder_base: str, device) -> dict:
    """Write :func:`whole_head_next_stage_map` of each case in ``keys`` into
    ``output_folder_base/predicted_next_stage/<next stage>/<key>.b2nd`` (nnU-Net's place and format for the
    previous stage's segmentation), for every next stage of ``previous_stage``. Returns {"seconds_per_case": ...}.
    """
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    keys = list(keys)
    next_stages = plans_manager.get_configuration(previous_stage).next_stage_names or []
    t0 = time.perf_counter()
    for nxt in next_stages:
        folder = join(str(nnUNet_preprocessed), plans_manager.dataset_name,
                      plans_manager.get_configuration(nxt).data_identifier)
        ds_class = infer_dataset_class(folder)
        out = join(output_folder_base, "predicted_next_stage", nxt)
        os.makedirs(out, exist_ok=True)
        ratio = coarse_to_fine_ratio(plans_manager, previous_stage, nxt)
        for key in keys:
            data = ds_class(folder, [key]).load_case(key)[0]
            # the fine preprocessed case holds the image channels only (nnU-Net keeps the previous stage's
            # segmentation in a separate folder)
            seg = whole_head_next_stage_map(network, parameters, np.asarray(data[:]), ratio, device)
            ds_class.save_seg(seg, join(out, key))
    n = max(1, len(keys) * max(1, len(next_stages)))
    return {"seconds_per_case": (time.perf_counter() - t0) / n}


def export_next_stage(dataset: str | int, trainer_name: str = DEFAULT_TRAINER, plans_name: str = DEFAULT_PLANS,
                      previous_stage: str = COARSE, device: str = "cpu", use_mirroring: bool = False,
                      checkpoint_name: str = CHECKPOINT, verbose: bool = True) -> dict:
    """Write stage-1 predictions for every preprocessed case into ``predicted_next_stage/<next stage>``.

    A case is predicted by the stage-1 fold that held it out when that fold is trained (out-of-fold, exactly what
    nnU-Net itself writes); otherwise by the ensemble of the trained folds. Cases predicted by a model that saw them
    in training are listed in ``export_info.json`` (``in_sample``): such predictions are optimistic, so fine-stage
    training on them sees cleaner coarse maps than at test time. Returns that info dict.

    Our stage-1 network (ThrombusCoarseUNet) is exported as ``predict`` feeds the fine stage: one whole-head pass
    per fold over the fine preprocessed case (:func:`whole_head_next_stage_map`; ``use_mirroring`` unused).
    Other stage-1 networks (nnU-Net's own) keep nnU-Net's sliding window and resampling.
    """
    import torch
    from nnunetv2.inference.export_prediction import resample_and_save
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_thrombus.networks.cascade_net import unwrap_network

    dataset_name = _dataset_name(dataset)
    model_dir = str(stage_folder(dataset, previous_stage, trainer_name, plans_name))
    folds = [f for f in trained_folds(model_dir, checkpoint_name) if f != "all"]
    if not folds:
        raise FileNotFoundError(f"no stage-1 checkpoint ({checkpoint_name}) under {model_dir}; train one first: "
                                f"nnUNetv2_train {dataset} {previous_stage} 0 -tr {trainer_name} -p {plans_name}")
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=use_mirroring,
                                device=torch.device(device), allow_tqdm=False)
    with quiet_nnunet():
        predictor.initialize_from_trained_model_folder(model_dir, use_folds=tuple(folds),
                                                       checkpoint_name=checkpoint_name)
    all_params = list(predictor.list_of_parameters)
    network = unwrap_network(predictor.network)
    whole_head = has_whole_head_pass(network)
    pm = PlansManager(join(model_dir, "plans.json"))
    cm = pm.get_configuration(previous_stage)
    pre_base = join(str(nnUNet_preprocessed), dataset_name)
    splits = json.load(open(join(pre_base, "splits_final.json")))
    holdout = {k: f for f in folds for k in splits[f]["val"]}
    src_folder = join(pre_base, cm.data_identifier)
    ds_class = infer_dataset_class(src_folder)
    identifiers = ds_class.get_identifiers(src_folder)
    info = {"folds": folds, "in_sample": [], "out_of_fold": [], "next_stages": cm.next_stage_names or [],
            "coarse_map": "whole-head pass (as predict)" if whole_head else "nnU-Net sliding window"}
    for nxt in info["next_stages"]:
        os.makedirs(join(model_dir, "predicted_next_stage", nxt), exist_ok=True)
    t_start = time.perf_counter()
    for i, key in enumerate(identifiers):
        fold = holdout.get(key)
        params = [all_params[folds.index(fold)]] if fold is not None else all_params
        (info["out_of_fold"] if fold is not None else info["in_sample"]).append(key)
        if whole_head:
            write_whole_head_next_stage(network, params, pm, previous_stage, [key], model_dir, predictor.device)
        else:
            data, _, _, props = ds_class(src_folder, [key]).load_case(key)
            predictor.list_of_parameters = params
            logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(data[:]).float()).cpu()
            for nxt in info["next_stages"]:
                next_cm = pm.get_configuration(nxt)
                next_folder = join(pre_base, next_cm.data_identifier)
                next_class = infer_dataset_class(next_folder)
                d, _, _, _ = next_class(next_folder, [key]).load_case(key)
                resample_and_save(logits, d.shape[1:], join(model_dir, "predicted_next_stage", nxt, key), pm, cm,
                                  props, join(model_dir, "dataset.json"), 1, next_class)
        if verbose:
            logger.info("[export-next-stage] %d/%d %s (%s)", i + 1, len(identifiers), key,
                        f"fold {fold}" if fold is not None else f"ensemble of folds {folds}")
    info["seconds_per_case"] = round((time.perf_counter() - t_start) / max(1, len(identifiers)), 3)
    write_json(join(model_dir, "predicted_next_stage", "export_info.json"), info, indent=1)
    return info
