"""Named training recipes as trainer classes, the way nnU-Net names its own (``nnUNetTrainer_250epochs``).

A model's folder name (``<trainer>__<plans>__<configuration>``) then says how it was trained: a
``ThrombusCascadeTrainer_cpuShort`` model and a ``ThrombusCascadeTrainer`` model (the paper's recipe) never share a
folder, a report or a table row. Each class below sets its recipe (a
:class:`~nnunet_thrombus.training.overrides.TrainingSettings`) and nothing else; run-time overrides
(:mod:`nnunet_thrombus.training.overrides`) still apply on top and are written to ``fold_k/training_recipe.json``
with the effective recipe.

Recipes:

- ``paper`` (no suffix): nnU-Net's schedule (1000 x 250 iterations), SGD Nesterov 0.99, lr 0.01, poly 0.9, mirroring.
- ``cpuShort`` (suffix ``_cpuShort``): the short CPU recipe: AdamW, lr 1e-3, poly 0.9, 8 epochs x 100 iterations,
  2 validation iterations, no test-time mirroring; augmentation mirrors the head left-right only
  (:mod:`~nnunet_thrombus.training.mirroring`; nnU-Net mirrors all three axes). A few hundred SGD iterations
  leave the full-resolution output predicting nothing; AdamW learns (docs/results/demo.md).

Every trainer of :mod:`nnunet_thrombus.training.variants` (the ablations and the vanilla baseline
``nnUNetTrainer_envSchedule``) has a ``_cpuShort`` twin here; a variant that reuses another trainer's stage 1
reuses that trainer's ``_cpuShort`` stage 1.
"""
from __future__ import annotations

from nnunet_thrombus.training.overrides import TrainingSettings
from nnunet_thrombus.training.trainer import ThrombusCascadeTrainer
from nnunet_thrombus.training.variants import (
    ThrombusCascadeTrainer_contextSwap,
    ThrombusCascadeTrainer_contextSwap80,
    ThrombusCascadeTrainer_noCBAM,
    ThrombusCascadeTrainer_noCoarseFeatures,
    ThrombusCascadeTrainer_noPyramidFusion,
    ThrombusCascadeTrainer_patchContext,
    ThrombusCascadeTrainer_plain,
    nnUNetTrainer_envSchedule,
)

#: the short CPU recipe
CPU_SHORT = TrainingSettings(optimizer="adamw", lr=1e-3, mirroring=False, num_epochs=8, num_iterations_per_epoch=100,
                             num_val_iterations_per_epoch=2, save_every=8)
#: recipe name -> settings
RECIPES = {"cpuShort": CPU_SHORT}


class ThrombusCascadeTrainer_cpuShort(ThrombusCascadeTrainer):
    """ThrombusCascadeTrainer, short CPU recipe."""
    recipe_name, recipe = "cpuShort", CPU_SHORT


class ThrombusCascadeTrainer_noCBAM_cpuShort(ThrombusCascadeTrainer_noCBAM):
    """ThrombusCascadeTrainer_noCBAM, short CPU recipe."""
    recipe_name, recipe = "cpuShort", CPU_SHORT


class ThrombusCascadeTrainer_noPyramidFusion_cpuShort(ThrombusCascadeTrainer_noPyramidFusion):
    """ThrombusCascadeTrainer_noPyramidFusion, short CPU recipe."""
    recipe_name, recipe = "cpuShort", CPU_SHORT


class ThrombusCascadeTrainer_noCoarseFeatures_cpuShort(ThrombusCascadeTrainer_noCoarseFeatures):
    """ThrombusCascadeTrainer_noCoarseFeatures, short CPU recipe; stage 1 of ThrombusCascadeTrainer_cpuShort."""
    recipe_name, recipe = "cpuShort", CPU_SHORT
    stage1_trainer_name = "ThrombusCascadeTrainer_cpuShort"


class ThrombusCascadeTrainer_patchContext_cpuShort(ThrombusCascadeTrainer_patchContext):
    """ThrombusCascadeTrainer_patchContext, short CPU recipe; stage 1 of ThrombusCascadeTrainer_cpuShort."""
    recipe_name, recipe = "cpuShort", CPU_SHORT
    stage1_trainer_name = "ThrombusCascadeTrainer_cpuShort"


class ThrombusCascadeTrainer_contextSwap_cpuShort(ThrombusCascadeTrainer_contextSwap):
    """ThrombusCascadeTrainer_contextSwap, short CPU recipe; stage 1 of ThrombusCascadeTrainer_cpuShort."""
    recipe_name, recipe = "cpuShort", CPU_SHORT
    stage1_trainer_name = "ThrombusCascadeTrainer_cpuShort"


class ThrombusCascadeTrainer_contextSwap80_cpuShort(ThrombusCascadeTrainer_contextSwap80):
    """ThrombusCascadeTrainer_contextSwap80, short CPU recipe; stage 1 of ThrombusCascadeTrainer_cpuShort."""
    recipe_name, recipe = "cpuShort", CPU_SHORT
    stage1_trainer_name = "ThrombusCascadeTrainer_cpuShort"


class ThrombusCascadeTrainer_plain_cpuShort(ThrombusCascadeTrainer_plain):
    """ThrombusCascadeTrainer_plain, short CPU recipe."""
    recipe_name, recipe = "cpuShort", CPU_SHORT


class nnUNetTrainer_envSchedule_cpuShort(nnUNetTrainer_envSchedule):
    """The vanilla baseline, short CPU recipe."""
    recipe_name, recipe = "cpuShort", CPU_SHORT
