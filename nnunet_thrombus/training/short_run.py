"""The schedule, optimizer and mirroring of our trainers: a named recipe, then run-time overrides.

:class:`ShortScheduleMixin` applies, in ``__init__``, the class's recipe (a
:class:`~nnunet_thrombus.training.overrides.TrainingSettings`; the paper's when empty) and then the run-time
overrides (:mod:`nnunet_thrombus.training.overrides`: ``THROMBUS_*`` variables, or the arguments of an in-process
training call), and writes the effective recipe to ``fold_k/training_recipe.json`` when training starts.

Why AdamW for short CPU runs (docs/results/demo.md, "what we saw"): on the demo cohort, 800 iterations of SGD (the
paper's recipe, meant for 250,000 iterations) left the full-resolution output at a thrombus probability below 0.01
everywhere while the half-resolution deep-supervision output had begun to find clots; the same network and data
with AdamW 1e-3 reached a validation pseudo-Dice of 0.58 after 300 iterations and 0.87 after 600.
"""
from __future__ import annotations

from nnunet_thrombus import __version__
from nnunet_thrombus.model_folder import write_recipe
from nnunet_thrombus.training.mirroring import augmentation_mirror_axes
from nnunet_thrombus.training.overrides import SCHEDULE_FIELDS, TrainingSettings, environment_overrides


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
    class's recipe (:attr:`recipe`; empty: nnU-Net's schedule with the paper's SGD) and then the run-time overrides
    (:func:`~nnunet_thrombus.training.overrides.environment_overrides`); :meth:`apply_overrides` layers the
    arguments of an in-process training call on top, before ``initialize``. The optimizer is SGD Nesterov 0.99 at
    nnU-Net's lr 0.01 unless the settings say AdamW (lr 1e-3 unless given). When training starts the effective
    recipe is written to ``fold_k/training_recipe.json`` beside the checkpoints."""

    #: the recipe's name in ``training_recipe.json`` and in reports; named recipes in ``training/recipes.py``
    recipe_name = "paper"
    #: the recipe's settings, applied before the run-time overrides
    recipe = TrainingSettings()

    def _apply_short_schedule(self, overrides: TrainingSettings | None = None) -> None:
        if "_before_recipe" not in self.__dict__:  # what __init__ set, so a second call starts from the same place
            self._before_recipe = {a: getattr(self, a, None) for a in SCHEDULE_FIELDS + ("initial_lr",)}
        #: the run-time overrides this trainer runs with (recorded in training_recipe.json)
        self.run_overrides = environment_overrides() if overrides is None else overrides
        settings = self.recipe.then(self.run_overrides)
        for attr in SCHEDULE_FIELDS:
            value = getattr(settings, attr)
            value = self._before_recipe[attr] if value is None else value
            if value is not None:
                setattr(self, attr, value)
        self.no_mirroring = settings.mirroring is False
        self.mirror_augment = settings.mirror_augment or ("left-right" if self.no_mirroring else "all")
        self.optimizer_name = settings.optimizer or "sgd"
        if settings.lr is not None:
            self.initial_lr = settings.lr
        elif self.optimizer_name == "adamw":
            self.initial_lr = 1e-3
        elif self._before_recipe["initial_lr"] is not None:
            self.initial_lr = self._before_recipe["initial_lr"]
        self.context_cache_gb = settings.context_cache_gb

    def apply_overrides(self, overrides: TrainingSettings) -> None:
        """Layer ``overrides`` (an in-process training call's arguments) over the recipe and the environment's
        overrides. Call right after construction, before ``initialize`` (as nnU-Net's ``run_training`` sets
        ``disable_checkpointing`` on the trainer it built)."""
        if getattr(self, "was_initialized", False):
            raise RuntimeError(f"{type(self).__name__}: apply_overrides after initialize() has no effect on the "
                               f"optimizer or the data loaders; call it right after creating the trainer")
        self._apply_short_schedule(environment_overrides().then(overrides))

    def effective_recipe(self) -> dict:
        """What this training actually runs with (read after ``initialize``): optimizer, learning rate and schedule,
        loss, epochs x iterations, batch, foreground oversampling, mirroring, and the run-time overrides."""
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
                "overrides": self.run_overrides.given(), "nnunet_thrombus": __version__}

    def on_train_start(self):
        super().on_train_start()
        if self.local_rank == 0:
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
