"""Short training schedules from the environment (nnU-Net's ``nnUNetv2_train`` has no epochs flag).

| variable | meaning | nnU-Net default |
| --- | --- | --- |
| ``THROMBUS_NUM_EPOCHS`` | epochs | 1000 |
| ``THROMBUS_ITERS_PER_EPOCH`` | training iterations per epoch | 250 |
| ``THROMBUS_VAL_ITERS`` | validation iterations per epoch | 50 |
| ``THROMBUS_SAVE_EVERY`` | checkpoint every N epochs | 50 |
| ``THROMBUS_OVERSAMPLE_FG`` | share of each batch forced to contain thrombus (0-1) | 0.33 |

Counts must be positive integers and the share a number in [0, 1]; anything else raises ``ValueError`` naming the
variable. Short CPU schedules learn a 100-voxel clot faster when more patches contain one; the demo and the
benchmark set the same share for every trainer they compare.
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
                         save_every: int | None = None, oversample_fg: float | None = None) -> dict:
    """The ``THROMBUS_*`` variables for a short run (to merge into a subprocess environment)."""
    env = {"THROMBUS_NUM_EPOCHS": str(epochs), "THROMBUS_ITERS_PER_EPOCH": str(iters_per_epoch)}
    if val_iters is not None:
        env["THROMBUS_VAL_ITERS"] = str(val_iters)
    if save_every is not None:
        env["THROMBUS_SAVE_EVERY"] = str(save_every)
    if oversample_fg is not None:
        env["THROMBUS_OVERSAMPLE_FG"] = str(oversample_fg)
    return env
