"""Short training schedules from the environment (nnU-Net's ``nnUNetv2_train`` has no epochs flag).

| variable | meaning | nnU-Net default |
| --- | --- | --- |
| ``THROMBUS_NUM_EPOCHS`` | epochs | 1000 |
| ``THROMBUS_ITERS_PER_EPOCH`` | training iterations per epoch | 250 |
| ``THROMBUS_VAL_ITERS`` | validation iterations per epoch | 50 |
| ``THROMBUS_SAVE_EVERY`` | checkpoint every N epochs | 50 |
| ``THROMBUS_OVERSAMPLE_FG`` | share of each batch forced to contain thrombus (0-1) | 0.33 |
| ``THROMBUS_NO_MIRRORING`` | ``1``: no test-time mirroring (in the final validation and later ``nnUNetv2_predict``, as nnU-Net's ``nnUNetTrainerNoMirroring``); augmentation then mirrors left-right only unless ``THROMBUS_MIRROR_AUGMENT`` says otherwise | mirroring on |
| ``THROMBUS_MIRROR_AUGMENT`` | mirror augmentation: ``all`` (nnU-Net's three axes), ``left-right`` (the head's left-right axis only, :mod:`~nnunet_thrombus.training.mirroring`) or ``off`` (none: how short runs trained before 2026-12-02) | ``all``; ``left-right`` with ``THROMBUS_NO_MIRRORING=1`` |
| ``THROMBUS_OPTIMIZER`` | ``sgd`` (the paper: SGD Nesterov 0.99, lr 0.01) or ``adamw`` (AdamW, lr ``THROMBUS_LR``, default 1e-3); poly 0.9 decay either way | ``sgd`` |
| ``THROMBUS_LR`` | initial learning rate of the chosen optimizer | 0.01 (sgd), 1e-3 (adamw) |
| ``THROMBUS_SEED`` | seeds Python's, numpy's and torch's global generators when the trainer is created (weight initialisation, patch sampling, augmentation); repeatable only with ``nnUNet_n_proc_DA=0`` and on CPU or deterministic cuDNN | unseeded |

Counts must be positive integers and the share a number in [0, 1]; anything else raises ``ValueError`` naming the
variable. The demo and the benchmark set the same variables for every trainer they compare.

Why AdamW for short CPU runs (docs/results/demo.md): on the demo cohort, 600 iterations of SGD (the paper's recipe,
meant for 250,000 iterations) left the full-resolution output at a thrombus probability below 0.01 everywhere
while the half-resolution deep-supervision output had begun to find clots; the same network and data with AdamW
1e-3 reached a validation pseudo-Dice of 0.87 in the same 600 iterations.
"""
from __future__ import annotations

import os

_VARIABLES = {
    "THROMBUS_NUM_EPOCHS": "num_epochs",
    "THROMBUS_ITERS_PER_EPOCH": "num_iterations_per_epoch",
    "THROMBUS_VAL_ITERS": "num_val_iterations_per_epoch",
    "THROMBUS_SAVE_EVERY": "save_every",
}


def schedule_overrides(environ: dict | None = None) -> dict:
    """Trainer attribute -> value for every ``THROMBUS_*`` schedule variable that is set."""
    env = os.environ if environ is None else environ
    out = {}
    for var, attr in _VARIABLES.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"{var}={raw!r}: expected a positive integer")
        out[attr] = value
    share = env.get("THROMBUS_OVERSAMPLE_FG")
    if share not in (None, ""):
        try:
            value = float(share)
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"THROMBUS_OVERSAMPLE_FG={share!r}: expected a number in [0, 1]")
        out["oversample_foreground_percent"] = value
    return out


def schedule_environment(epochs: int, iters_per_epoch: int, val_iters: int | None = None,
                         save_every: int | None = None, oversample_fg: float | None = None,
                         mirroring: bool = True, optimizer: str | None = None, lr: float | None = None) -> dict:
    """The ``THROMBUS_*`` variables for a short run (to merge into a subprocess environment)."""
    env = {"THROMBUS_NUM_EPOCHS": str(epochs), "THROMBUS_ITERS_PER_EPOCH": str(iters_per_epoch)}
    if val_iters is not None:
        env["THROMBUS_VAL_ITERS"] = str(val_iters)
    if save_every is not None:
        env["THROMBUS_SAVE_EVERY"] = str(save_every)
    if oversample_fg is not None:
        env["THROMBUS_OVERSAMPLE_FG"] = str(oversample_fg)
    env["THROMBUS_NO_MIRRORING"] = "0" if mirroring else "1"
    if optimizer is not None:
        env["THROMBUS_OPTIMIZER"] = optimizer
    if lr is not None:
        env["THROMBUS_LR"] = str(lr)
    return env


OPTIMIZERS = ("sgd", "adamw")


def optimizer_choice(environ: dict | None = None, default: str = "sgd") -> tuple[str, float | None]:
    """(``sgd`` or ``adamw``, learning rate or None for the optimizer's default) from ``THROMBUS_OPTIMIZER`` (else
    ``default``) and ``THROMBUS_LR``; ``ValueError`` naming the variable for anything else."""
    env = os.environ if environ is None else environ
    name = (env.get("THROMBUS_OPTIMIZER") or default).strip().lower()
    if name not in OPTIMIZERS:
        raise ValueError(f"THROMBUS_OPTIMIZER={name!r}: expected one of {', '.join(OPTIMIZERS)}")
    raw = env.get("THROMBUS_LR")
    if raw in (None, ""):
        return name, None
    try:
        lr = float(raw)
    except ValueError:
        lr = -1.0
    if not 0.0 < lr < 1.0:
        raise ValueError(f"THROMBUS_LR={raw!r}: expected a learning rate in (0, 1)")
    return name, lr


def mirroring_disabled(environ: dict | None = None) -> bool:
    """True when ``THROMBUS_NO_MIRRORING`` is ``1``/``true``; ``ValueError`` for other non-empty values."""
    env = os.environ if environ is None else environ
    raw = (env.get("THROMBUS_NO_MIRRORING") or "").strip().lower()
    if raw in ("", "0", "false", "f"):
        return False
    if raw in ("1", "true", "t"):
        return True
    raise ValueError(f"THROMBUS_NO_MIRRORING={raw!r}: expected 1 or 0")


def training_seed(environ: dict | None = None) -> int | None:
    """``THROMBUS_SEED`` as a non-negative integer, or None when unset; ``ValueError`` naming it otherwise."""
    env = os.environ if environ is None else environ
    raw = env.get("THROMBUS_SEED")
    if raw in (None, ""):
        return None
    if not str(raw).strip().isdigit():
        raise ValueError(f"THROMBUS_SEED={raw!r}: expected a non-negative integer")
    return int(raw)


#: the keys a named recipe (:mod:`nnunet_thrombus.training.recipes`) may set, before any ``THROMBUS_*`` override
RECIPE_KEYS = ("num_epochs", "num_iterations_per_epoch", "num_val_iterations_per_epoch", "save_every",
               "oversample_foreground_percent", "optimizer", "lr", "mirroring", "mirror_augment")


def thrombus_overrides(environ: dict | None = None) -> dict:
    """Every ``THROMBUS_*`` variable set (non-empty) in the environment, as written there."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in sorted(env.items()) if k.startswith("THROMBUS_") and v != ""}


def describe_loss(loss) -> str:
    """One line naming a trainer's loss: the Dice class, batch Dice, the CE / Dice weights and the deep-supervision
    weights (nnU-Net's ``DeepSupervisionWrapper`` around ``DC_and_CE_loss``; other losses by class name)."""
    ds = getattr(loss, "weight_factors", None)
    inner = getattr(loss, "loss", loss) if ds is not None else loss
    dc, ce = getattr(inner, "dc", None), getattr(inner, "ce", None)
    if dc is None or ce is None:
        text = type(inner).__name__
    else:
        text = (f"{getattr(inner, 'weight_dice', 1):g} x {type(dc).__name__}"
                f"{' (batch Dice)' if getattr(dc, 'batch_dice', False) else ''} + "
                f"{getattr(inner, 'weight_ce', 1):g} x {type(ce).__name__}")
    if ds is not None:
        text += ", deep supervision weights " + ", ".join(f"{w:.3g}" for w in ds)
    return text


class ShortScheduleMixin:
    """For nnU-Net trainers: ``_apply_short_schedule()`` (call at the end of ``__init__``) sets the schedule of the
    named recipe (``recipe_defaults``; empty: nnU-Net's schedule with the paper's SGD) and then the ``THROMBUS_*``
    overrides; mirroring is switched off when ``THROMBUS_NO_MIRRORING=1``; ``THROMBUS_OPTIMIZER`` / ``THROMBUS_LR``
    choose the optimizer (SGD Nesterov 0.99 with nnU-Net's lr 0.01 by default, or AdamW). When training starts the
    effective recipe is written to ``fold_k/training_recipe.json`` beside the checkpoints."""

    #: the recipe's name in ``training_recipe.json`` and in reports; variants in ``training/recipes.py``
    recipe_name = "paper"
    #: the recipe's settings (keys of :data:`RECIPE_KEYS`), applied before the ``THROMBUS_*`` overrides
    recipe_defaults: dict = {}

    def _apply_short_schedule(self) -> None:
        d = dict(self.recipe_defaults)
        unknown = set(d) - set(RECIPE_KEYS)
        if unknown:
            raise ValueError(f"{type(self).__name__}.recipe_defaults: unknown keys {sorted(unknown)}; "
                             f"allowed: {RECIPE_KEYS}")
        for attr in RECIPE_KEYS[:5]:
            if attr in d:
                setattr(self, attr, d[attr])
        for attr, value in schedule_overrides().items():
            setattr(self, attr, value)
        if (os.environ.get("THROMBUS_NO_MIRRORING") or "") == "":
            self.no_mirroring = not d.get("mirroring", True)
        else:
            self.no_mirroring = mirroring_disabled()
        from nnunet_thrombus.training.mirroring import mirror_augment_choice

        self.mirror_augment = mirror_augment_choice(
            default=d.get("mirror_augment", "left-right" if self.no_mirroring else "all"))
        self.optimizer_name, lr = optimizer_choice(default=d.get("optimizer", "sgd"))
        if lr is None and "lr" in d and not os.environ.get("THROMBUS_OPTIMIZER"):
            lr = float(d["lr"])
        if lr is not None:
            self.initial_lr = lr
        elif self.optimizer_name == "adamw":
            self.initial_lr = 1e-3
        seed = training_seed()
        if seed is not None:  # before initialize() builds the network, so its weights depend on the seed alone
            import random

            import numpy as np
            import torch

            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)

    def effective_recipe(self) -> dict:
        """What this training actually runs with (read after ``initialize``): optimizer, learning rate and schedule,
        loss, epochs x iterations, batch, foreground oversampling, mirroring, and the ``THROMBUS_*`` overrides."""
        from nnunet_thrombus import __version__

        opt = getattr(self, "optimizer", None)
        group = opt.param_groups[0] if opt is not None else {}
        sched = getattr(self, "lr_scheduler", None)
        exponent = getattr(sched, "exponent", None)
        axes = getattr(self, "inference_allowed_mirroring_axes", None)
        return {"name": self.recipe_name, "trainer": type(self).__name__,
                "configuration": self.configuration_name, "plans": self.plans_manager.plans_name,
                "fold": self.fold,
                # the trainer whose 3d_lowres stage this cascade stage uses (variants may reuse another's)
                "stage1_trainer": ((getattr(self, "stage1_trainer_name", None) or type(self).__name__)
                                   if getattr(self, "is_cascaded", False) else None),
                "optimizer": type(opt).__name__ if opt is not None else None,
                "initial_lr": float(self.initial_lr), "weight_decay": group.get("weight_decay"),
                "momentum": group.get("momentum"), "nesterov": group.get("nesterov"),
                "lr_schedule": (f"poly {exponent:g}" if exponent is not None else type(sched).__name__),
                "loss": describe_loss(self.loss) if getattr(self, "loss", None) is not None else None,
                "num_epochs": int(self.num_epochs), "num_iterations_per_epoch": int(self.num_iterations_per_epoch),
                "num_val_iterations_per_epoch": int(self.num_val_iterations_per_epoch),
                "batch_size": int(self.batch_size),
                "oversample_foreground_percent": float(self.oversample_foreground_percent),
                "mirroring": not getattr(self, "no_mirroring", False) and bool(axes),
                "mirror_axes": list(axes) if axes else None,
                "mirror_augment": getattr(self, "mirror_augment", None),
                "augmentation_mirror_axes": (list(self.augmentation_mirror_axes)
                                             if getattr(self, "augmentation_mirror_axes", None) else None),
                "overrides": thrombus_overrides(), "nnunet_thrombus": __version__}

    def on_train_start(self):
        super().on_train_start()
        if self.local_rank == 0:
            from nnunet_thrombus.model_folder import write_recipe

            write_recipe(self.output_folder, self.effective_recipe())

    def configure_optimizers(self):
        import torch
        from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

        params = [p for p in self.network.parameters() if p.requires_grad]
        if getattr(self, "optimizer_name", "sgd") == "adamw":
            optimizer = torch.optim.AdamW(params, self.initial_lr, weight_decay=self.weight_decay)
        else:
            optimizer = torch.optim.SGD(params, self.initial_lr, weight_decay=self.weight_decay, momentum=0.99,
                                        nesterov=True)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs, exponent=0.9)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        """nnU-Net's rotation and patch size; test-time mirroring off with ``no_mirroring``; augmentation mirrors
        the axes ``mirror_augment`` names (:func:`~nnunet_thrombus.training.mirroring.augmentation_mirror_axes`)."""
        from nnunet_thrombus.training.mirroring import augmentation_mirror_axes

        rotation, dummy_2d, patch, mirror_axes = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if getattr(self, "no_mirroring", False):
            self.inference_allowed_mirroring_axes = None
        choice = getattr(self, "mirror_augment", None)  # set with no_mirroring by _apply_short_schedule
        if choice is not None:
            mirror_axes, why = augmentation_mirror_axes(choice, self.preprocessed_dataset_folder,
                                                        self.plans_manager.transpose_forward, ndim=len(patch))
            self.print_to_log_file(why)
        self.augmentation_mirror_axes = mirror_axes
        return rotation, dummy_2d, patch, mirror_axes
