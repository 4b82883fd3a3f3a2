"""Named training recipes as trainer variants, the way nnU-Net names its own (``nnUNetTrainer_250epochs``).

A model's folder name (``<trainer>__<plans>__<configuration>``) then says how it was trained: a
``ThrombusCascadeTrainer_cpuShort`` model and a ``ThrombusCascadeTrainer`` model (the paper's recipe) never share a
folder, a report or a table row. ``THROMBUS_*`` environment variables still override a recipe for experiments; the
effective recipe, overrides included, is written to ``fold_k/training_recipe.json`` either way
(:class:`~nnunet_thrombus.training.short_run.ShortScheduleMixin`).

Recipes:

- ``paper`` (no suffix): nnU-Net's schedule (1000 x 250 iterations), SGD Nesterov 0.99, lr 0.01, poly 0.9, mirroring.
- ``cpuShort`` (suffix ``_cpuShort``): the short CPU recipe of the demo and the cpu benchmark: AdamW, lr 1e-3,
  poly 0.9, 8 epochs x 100 iterations, 2 validation iterations, no test-time mirroring; augmentation mirrors the
  head left-right only (:mod:`~nnunet_thrombus.training.mirroring`; nnU-Net mirrors all three axes).
  A few hundred SGD iterations leave the full-resolution output predicting nothing; AdamW learns
  (docs/results/demo.md).

Every trainer of :mod:`nnunet_thrombus.training.variants` (the ablations and the vanilla baseline
``nnUNetTrainer_envSchedule``) gets a ``_cpuShort`` twin here; a variant that reuses another trainer's stage 1
reuses that trainer's ``_cpuShort`` stage 1.
"""
from __future__ import annotations

from nnunet_thrombus.training import variants as _variants
from nnunet_thrombus.training.trainer import ThrombusCascadeTrainer

#: recipe name -> settings (keys of ``short_run.RECIPE_KEYS``)
RECIPES = {
    "cpuShort": {"optimizer": "adamw", "lr": 1e-3, "mirroring": False, "num_epochs": 8,
                 "num_iterations_per_epoch": 100, "num_val_iterations_per_epoch": 2, "save_every": 8},
}


def _bases() -> list[type]:
    """Our trainer, its ablations and the vanilla baseline, as ``variants`` defines them today."""
    names = sorted(n for n in vars(_variants) if n.startswith("ThrombusCascadeTrainer_"))
    return [ThrombusCascadeTrainer] + [getattr(_variants, n) for n in names] + [_variants.nnUNetTrainer_envSchedule]


def recipe_variant(base: type, recipe: str) -> type:
    """The subclass ``<base>_<recipe>`` with the recipe's settings (``KeyError`` for an unknown recipe)."""
    attrs = {"recipe_name": recipe, "recipe_defaults": dict(RECIPES[recipe]), "__module__": __name__,
             "__doc__": f"{base.__name__} trained with the {recipe!r} recipe ({RECIPES[recipe]})."}
    stage1 = getattr(base, "stage1_trainer_name", None)
    if stage1:
        attrs["stage1_trainer_name"] = f"{stage1}_{recipe}"
    return type(f"{base.__name__}_{recipe}", (base,), attrs)


__all__ = ["RECIPES", "recipe_variant"]
for _recipe in RECIPES:
    for _base in _bases():
        _cls = recipe_variant(_base, _recipe)
        globals()[_cls.__name__] = _cls
        __all__.append(_cls.__name__)
