"""Training settings a run may change: one frozen dataclass, and the one place that reads them from the environment.

A trainer's settings come from three layers, later ones winning:

1. the trainer class: nnU-Net's defaults, the paper's optimizer, and a named recipe
   (:mod:`nnunet_thrombus.training.recipes`, e.g. ``ThrombusCascadeTrainer_cpuShort``), which is a
   :class:`TrainingSettings` class attribute;
2. ``THROMBUS_*`` environment variables, for experiments with plain ``nnUNetv2_train`` (nnU-Net has no epochs
   flag). :func:`environment_overrides` reads them once per process; nothing else in the package reads them;
3. the arguments of an in-process training call (``nnunet_thrombus train --epochs ...``,
   :func:`nnunet_thrombus.training.run.train_model`), which the demo and the benchmark use.

Whatever was overridden is written into ``fold_k/training_recipe.json`` beside the checkpoints.

| variable | field | meaning | default |
| --- | --- | --- | --- |
| ``THROMBUS_NUM_EPOCHS`` | ``num_epochs`` | epochs | 1000 |
| ``THROMBUS_ITERS_PER_EPOCH`` | ``num_iterations_per_epoch`` | training iterations per epoch | 250 |
| ``THROMBUS_VAL_ITERS`` | ``num_val_iterations_per_epoch`` | validation iterations per epoch | 50 |
| ``THROMBUS_SAVE_EVERY`` | ``save_every`` | checkpoint every N epochs | 50 |
| ``THROMBUS_OVERSAMPLE_FG`` | ``oversample_foreground_percent`` | share of each batch forced to contain thrombus | 0.33 |
| ``THROMBUS_NO_MIRRORING`` | ``mirroring`` (inverted) | ``1``: no test-time mirroring; augmentation then mirrors left-right only unless ``mirror_augment`` says otherwise | mirroring on |
| ``THROMBUS_MIRROR_AUGMENT`` | ``mirror_augment`` | ``all``, ``left-right`` or ``off`` (:mod:`~nnunet_thrombus.training.mirroring`) | ``all``; ``left-right`` without test-time mirroring |
| ``THROMBUS_OPTIMIZER`` | ``optimizer`` | ``sgd`` (the paper: Nesterov 0.99, lr 0.01) or ``adamw`` (lr 1e-3); poly 0.9 decay either way | ``sgd`` |
| ``THROMBUS_LR`` | ``lr`` | initial learning rate of the chosen optimizer | 0.01 (sgd), 1e-3 (adamw) |
| ``THROMBUS_CONTEXT_CACHE_GB`` | ``context_cache_gb`` | memory for whole-case coarse contexts while training (a machine knob; changes no result) | 8 |

``seed`` has no variable: the entry point that seeds the global generators (``nnunet_thrombus train --seed``)
records it here so that ``training_recipe.json`` says which seed a model was trained with.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

OPTIMIZERS = ("sgd", "adamw")
#: mirror augmentation choices (:func:`nnunet_thrombus.training.mirroring.augmentation_mirror_axes`)
MIRROR_AUGMENT_CHOICES = ("all", "left-right", "off")
#: trainer attributes set as they are named
SCHEDULE_FIELDS = ("num_epochs", "num_iterations_per_epoch", "num_val_iterations_per_epoch", "save_every",
                   "oversample_foreground_percent")
#: field -> environment variable
ENV_VARIABLES = {"num_epochs": "THROMBUS_NUM_EPOCHS", "num_iterations_per_epoch": "THROMBUS_ITERS_PER_EPOCH",
                 "num_val_iterations_per_epoch": "THROMBUS_VAL_ITERS", "save_every": "THROMBUS_SAVE_EVERY",
                 "oversample_foreground_percent": "THROMBUS_OVERSAMPLE_FG", "mirroring": "THROMBUS_NO_MIRRORING",
                 "mirror_augment": "THROMBUS_MIRROR_AUGMENT", "optimizer": "THROMBUS_OPTIMIZER",
                 "lr": "THROMBUS_LR", "context_cache_gb": "THROMBUS_CONTEXT_CACHE_GB"}
DEFAULT_CONTEXT_CACHE_GB = 8.0


@dataclass(frozen=True)
class TrainingSettings:
    """Settings of one training; ``None`` keeps what the layer below chose. Bad values raise ``ValueError`` naming
    the field."""

    num_epochs: int | None = None
    num_iterations_per_epoch: int | None = None
    num_val_iterations_per_epoch: int | None = None
    save_every: int | None = None
    oversample_foreground_percent: float | None = None
    #: test-time mirroring (nnU-Net's ``inference_allowed_mirroring_axes``)
    mirroring: bool | None = None
    mirror_augment: str | None = None
    optimizer: str | None = None
    lr: float | None = None
    context_cache_gb: float | None = None
    seed: int | None = None

    def __post_init__(self):
        for name in SCHEDULE_FIELDS[:4]:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}={value!r}: expected a positive integer")
        share = self.oversample_foreground_percent
        if share is not None and not 0.0 <= share <= 1.0:
            raise ValueError(f"oversample_foreground_percent={share!r}: expected a number in [0, 1]")
        if self.mirror_augment is not None and self.mirror_augment not in MIRROR_AUGMENT_CHOICES:
            raise ValueError(f"mirror_augment={self.mirror_augment!r}: expected one of "
                             f"{', '.join(MIRROR_AUGMENT_CHOICES)}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
        if self.lr is not None and not 0.0 < self.lr < 1.0:
            raise ValueError(f"lr={self.lr!r}: expected a learning rate in (0, 1)")
        if self.context_cache_gb is not None and not self.context_cache_gb > 0:
            raise ValueError(f"context_cache_gb={self.context_cache_gb!r}: expected a positive number")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ValueError(f"seed={self.seed!r}: expected a non-negative integer")

    def given(self) -> dict:
        """The fields that are set (not None), by name: what ``training_recipe.json`` records as overrides."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def then(self, later: "TrainingSettings") -> "TrainingSettings":
        """These settings with every field ``later`` sets replacing ours. A later optimizer without a learning
        rate drops ours (a learning rate belongs to its optimizer)."""
        changes = later.given()
        if "optimizer" in changes and "lr" not in changes:
            changes["lr"] = None
        return replace(self, **changes)


def _positive_int(var: str, raw: str) -> int:
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(f"{var}={raw!r}: expected a positive integer")
    return int(raw)


def _number(var: str, raw: str, what: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{var}={raw!r}: expected {what}") from None


def from_environment(environ: Mapping[str, str]) -> TrainingSettings:
    """The ``THROMBUS_*`` variables set (non-empty) in ``environ`` as :class:`TrainingSettings`; ``ValueError``
    naming the variable for a bad value."""
    raw = {name: environ.get(var, "").strip() for name, var in ENV_VARIABLES.items()}
    raw = {name: value for name, value in raw.items() if value}
    values: dict = {}
    for name in SCHEDULE_FIELDS[:4]:
        if name in raw:
            values[name] = _positive_int(ENV_VARIABLES[name], raw[name])
    if "oversample_foreground_percent" in raw:
        var = ENV_VARIABLES["oversample_foreground_percent"]
        share = _number(var, raw["oversample_foreground_percent"], "a number in [0, 1]")
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{var}={raw['oversample_foreground_percent']!r}: expected a number in [0, 1]")
        values["oversample_foreground_percent"] = share
    if "mirroring" in raw:
        flag = raw["mirroring"].lower()
        if flag not in ("0", "1", "true", "false", "t", "f"):
            raise ValueError(f"THROMBUS_NO_MIRRORING={raw['mirroring']!r}: expected 1 or 0")
        values["mirroring"] = flag in ("0", "false", "f")
    if "mirror_augment" in raw:
        choice = raw["mirror_augment"].lower()
        choice = "left-right" if choice in ("lr", "left_right", "leftright") else choice
        if choice not in MIRROR_AUGMENT_CHOICES:
            raise ValueError(f"THROMBUS_MIRROR_AUGMENT={choice!r}: expected one of {', '.join(MIRROR_AUGMENT_CHOICES)}")
        values["mirror_augment"] = choice
    if "optimizer" in raw:
        name = raw["optimizer"].lower()
        if name not in OPTIMIZERS:
            raise ValueError(f"THROMBUS_OPTIMIZER={name!r}: expected one of {', '.join(OPTIMIZERS)}")
        values["optimizer"] = name
    if "lr" in raw:
        lr = _number("THROMBUS_LR", raw["lr"], "a learning rate in (0, 1)")
        if not 0.0 < lr < 1.0:
            raise ValueError(f"THROMBUS_LR={raw['lr']!r}: expected a learning rate in (0, 1)")
        values["lr"] = lr
    if "context_cache_gb" in raw:
        gb = _number("THROMBUS_CONTEXT_CACHE_GB", raw["context_cache_gb"], "a positive number of GB")
        if not gb > 0:
            raise ValueError(f"THROMBUS_CONTEXT_CACHE_GB={raw['context_cache_gb']!r}: expected a positive number")
        values["context_cache_gb"] = gb
    return TrainingSettings(**values)


@functools.lru_cache(maxsize=1)
def environment_overrides() -> TrainingSettings:
    """The process's ``THROMBUS_*`` overrides, read once (the only read of them in the package)."""
    return from_environment(os.environ)


__all__ = ["TrainingSettings", "from_environment", "environment_overrides", "ENV_VARIABLES", "OPTIMIZERS",
           "MIRROR_AUGMENT_CHOICES", "SCHEDULE_FIELDS", "DEFAULT_CONTEXT_CACHE_GB"]
