"""Train one fold in this process with explicit settings: what ``nnUNetv2_train`` does, plus a schedule and a seed.

nnU-Net's ``nnUNetv2_train`` has no flag for epochs, iterations, optimizer or seed. :func:`train_model` takes them as
arguments (a :class:`~nnunet_thrombus.training.overrides.TrainingSettings`), builds the trainer as nnU-Net's
``run_training`` does (nnU-Net 2.8: ``get_trainer_from_args``, ``maybe_load_checkpoint``, ``run_training``,
``perform_actual_validation``), layers the settings over the trainer's recipe before ``initialize``, and so writes
the usual results folder. ``nnunet_thrombus train`` is its command line; the demo and the benchmark start that
command as a subprocess with nnU-Net's folders in its environment.

nnU-Net's folders (``nnUNet_preprocessed``, ``nnUNet_results``) and trainer folder (``nnUNet_extTrainer``) come
from the process environment, as for every nnU-Net command.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np

from nnunet_thrombus.training.overrides import TrainingSettings

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (weight initialisation, patch sampling,
    augmentation). Repeatable only with ``nnUNet_n_proc_DA=0`` and on CPU or deterministic cuDNN."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_model(dataset: str | int, configuration: str, fold: int | str, trainer: str, plans: str,
                settings: TrainingSettings = TrainingSettings(), device: str = "cpu",
                continue_training: bool = False, only_validation: bool = False,
                export_probabilities: bool = False) -> Path:
    """Train (or, ``only_validation``, validate) one fold of ``trainer`` with ``settings`` over its recipe and the
    environment's overrides; returns the fold's output folder. ``settings.seed`` seeds the global generators first.

    ``ValueError`` when ``settings`` sets anything and ``trainer`` cannot take it (a plain nnU-Net trainer)."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args, maybe_load_checkpoint

    if settings.seed is not None:  # before the trainer builds its network, so the weights depend on the seed alone
        seed_everything(settings.seed)
    nnunet_trainer = get_trainer_from_args(str(dataset), configuration, fold if fold == "all" else int(fold),
                                           trainer, plans, continue_training, device=torch.device(device))
    if settings.given():
        if not hasattr(nnunet_trainer, "apply_overrides"):
            raise ValueError(f"trainer {trainer} takes no schedule or optimizer settings (given: "
                             f"{settings.given()}); use one of ours, e.g. ThrombusCascadeTrainer or the vanilla "
                             f"baseline nnUNetTrainer_envSchedule")
        nnunet_trainer.apply_overrides(settings)
    maybe_load_checkpoint(nnunet_trainer, continue_training, only_validation)
    if torch.cuda.is_available():  # nnU-Net's choice for training speed over bitwise repeatability
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
    if not only_validation:
        nnunet_trainer.run_training()
    nnunet_trainer.perform_actual_validation(export_probabilities)
    return Path(nnunet_trainer.output_folder)
