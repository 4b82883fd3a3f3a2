"""Where nnU-Net looks for our trainer, and the environment our subprocesses run nnU-Net with.

nnU-Net (>= 2.8) searches the folders listed in ``nnUNet_extTrainer`` (``os.pathsep``-separated) for trainer classes
it does not ship. We point it at ``nnunet_thrombus/nnunet_ext``, a folder whose only module re-exports our trainers.
"""
from __future__ import annotations

import os
from pathlib import Path

EXT_TRAINER_DIR = Path(__file__).resolve().parent / "nnunet_ext"


def ext_trainer_value(existing: str | None = None) -> str:
    """The value ``nnUNet_extTrainer`` must have: our folder, prepended to any folders already listed."""
    parts = [p for p in (existing or "").split(os.pathsep) if p]
    ours = str(EXT_TRAINER_DIR)
    return os.pathsep.join([ours] + [p for p in parts if p != ours])


def nnunet_environment(raw: str | os.PathLike | None = None, preprocessed: str | os.PathLike | None = None,
                       results: str | os.PathLike | None = None, base: dict | None = None,
                       cpu_friendly: bool = False) -> dict:
    """A copy of ``base`` (default ``os.environ``) with nnU-Net's folders and our trainer folder set.

    ``cpu_friendly`` adds the settings nnU-Net needs to train quickly on a small CPU machine: no torch.compile
    (``nnUNet_compile=f``), no augmentation worker processes (``nnUNet_n_proc_DA=0``), one preprocessing process.
    """
    env = dict(os.environ if base is None else base)
    for key, value in (("nnUNet_raw", raw), ("nnUNet_preprocessed", preprocessed), ("nnUNet_results", results)):
        if value is not None:
            env[key] = str(value)
    env["nnUNet_extTrainer"] = ext_trainer_value(env.get("nnUNet_extTrainer"))
    if cpu_friendly:
        env.setdefault("nnUNet_compile", "f")
        env.setdefault("nnUNet_n_proc_DA", "0")
        env.setdefault("nnUNet_def_n_proc", "1")
    return env
