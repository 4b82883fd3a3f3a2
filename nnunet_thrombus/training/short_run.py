"""Short training schedules from the environment (nnU-Net's ``nnUNetv2_train`` has no epochs flag).

| variable | meaning | nnU-Net default |
| --- | --- | --- |
| ``THROMBUS_NUM_EPOCHS`` | epochs | 1000 |
| ``THROMBUS_ITERS_PER_EPOCH`` | training iterations per epoch | 250 |
| ``THROMBUS_VAL_ITERS`` | validation iterations per epoch | 50 |
| ``THROMBUS_SAVE_EVERY`` | checkpoint every N epochs | 50 |
| ``THROMBUS_OVERSAMPLE_FG`` | share of each batch forced to contain thrombus (0-1) | 0.33 |
| ``THROMBUS_NO_MIRRORING`` | ``1``: no mirroring, neither as augmentation nor as test-time augmentation (also in the final validation and later ``nnUNetv2_predict``, as nnU-Net's ``nnUNetTrainerNoMirroring``) | mirroring on |
| ``THROMBUS_OPTIMIZER`` | ``sgd`` (the paper: SGD Nesterov 0.99, lr 0.01) or ``adamw`` (AdamW, lr ``THROMBUS_LR``, default 1e-3); poly 0.9 decay either way | ``sgd`` |
| ``THROMBUS_LR`` | initial learning rate of the chosen optimizer | 0.01 (sgd), 1e-3 (adamw) |

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


def optimizer_choice(environ: dict | None = None) -> tuple[str, float | None]:
    """(``sgd`` or ``adamw``, learning rate or None for the optimizer's default) from ``THROMBUS_OPTIMIZER`` and
    ``THROMBUS_LR``; ``ValueError`` naming the variable for anything else."""
    env = os.environ if environ is None else environ
    name = (env.get("THROMBUS_OPTIMIZER") or "sgd").strip().lower()
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


class ShortScheduleMixin:
    """For nnU-Net trainers: ``_apply_short_schedule()`` (call at the end of ``__init__``) sets the ``THROMBUS_*``
    schedule attributes; mirroring is switched off when ``THROMBUS_NO_MIRRORING=1``; ``THROMBUS_OPTIMIZER`` /
    ``THROMBUS_LR`` choose the optimizer (SGD Nesterov 0.99 with nnU-Net's lr 0.01 by default, or AdamW)."""

    def _apply_short_schedule(self) -> None:
        for attr, value in schedule_overrides().items():
            setattr(self, attr, value)
        self.no_mirroring = mirroring_disabled()
        self.optimizer_name, lr = optimizer_choice()
        if lr is not None:
            self.initial_lr = lr
        elif self.optimizer_name == "adamw":
            self.initial_lr = 1e-3

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
        rotation, dummy_2d, patch, mirror_axes = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if getattr(self, "no_mirroring", False):
            mirror_axes = None
            self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, patch, mirror_axes
