"""Where nnU-Net looks for our trainer, the environment our subprocesses run nnU-Net with, and the torch device.

nnU-Net (>= 2.8) searches the folders listed in ``nnUNet_extTrainer`` (``os.pathsep``-separated) for trainer classes
it does not ship. We point it at ``nnunet_thrombus/nnunet_ext``, a folder whose only module re-exports our trainers.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

EXT_TRAINER_DIR = Path(__file__).resolve().parent / "nnunet_ext"

#: what ``nnunet_thrombus env --cpu`` exports: settings every nnU-Net command accepts on a CPU machine. No
#: torch.compile; one data-augmentation worker. ``nnUNet_n_proc_DA=0`` (no worker, fastest for tiny CPU runs) is
#: refused by ``nnUNetv2_plan_and_preprocess``: its GPU-memory estimate calls ``torch.set_num_threads`` with it.
CPU_SETTINGS = {"nnUNet_compile": "f", "nnUNet_n_proc_DA": "1"}
DEVICES = ("cuda", "cpu", "mps")


def ext_trainer_value(existing: str | None = None) -> str:
    """The value ``nnUNet_extTrainer`` must have: our folder, prepended to any folders already listed."""
    parts = [p for p in (existing or "").split(os.pathsep) if p]
    ours = str(EXT_TRAINER_DIR)
    return os.pathsep.join([ours] + [p for p in parts if p != ours])


def trainer_class(name: str) -> type:
    """The trainer class called ``name``: ours (found in our trainer folder), else nnU-Net's own lookup (its trainers,
    then the folders a user listed in ``nnUNet_extTrainer``). For loading a trained model in this process without
    setting ``nnUNet_extTrainer`` in its environment.

    Ours are found by name, with nnU-Net's own class search over :data:`EXT_TRAINER_DIR`, as nnU-Net finds the
    trainers of ``nnUNet_extTrainer``: whoever loads a model asks for the class its checkpoint names, and imports
    no trainer module itself (inference sits below training)."""
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    found = recursive_find_python_class(str(EXT_TRAINER_DIR), name, f"{__package__}.{EXT_TRAINER_DIR.name}")
    if isinstance(found, type):
        return found
    return recursive_find_trainer_class_by_name(name)


def nnunet_environment(raw: str | os.PathLike | None = None, preprocessed: str | os.PathLike | None = None,
                       results: str | os.PathLike | None = None, base: dict | None = None,
                       cpu_friendly: bool = False) -> dict:
    """A copy of ``base`` (default ``os.environ``) with nnU-Net's folders and our trainer folder set.

    ``cpu_friendly`` (the demo, the benchmark, the tests) adds no torch.compile (``nnUNet_compile=f``), no
    augmentation worker processes during training (``nnUNet_n_proc_DA=0``; planning commands are run with 1, see
    :data:`CPU_SETTINGS`) and one preprocessing process.
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


def choose_device(requested: str | None = None) -> tuple[str, str]:
    """(device, reason): ``requested`` when given (``ValueError`` if it is CUDA and none is available), else
    ``cuda`` when torch sees a GPU, else ``cpu``, as nnU-Net's own predict defaults to CUDA."""
    import torch

    if requested is not None:
        if requested not in DEVICES:
            raise ValueError(f"device {requested!r}: choose one of {', '.join(DEVICES)}")
        if requested == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: torch sees no CUDA device here; use --device cpu or leave --device out")
        return requested, "--device"
    if torch.cuda.is_available():
        return "cuda", f"CUDA available ({torch.cuda.get_device_name(0)})"
    return "cpu", "no CUDA device found"


def announce_device(requested: str | None = None, quiet: bool = False, prefix: str = "") -> str:
    """:func:`choose_device`, with one line saying which device and why (unless ``quiet``); returns the device."""
    device, why = choose_device(requested)
    logger.log(logging.DEBUG if quiet else logging.INFO, f"{prefix}device: {device} ({why}; --device overrides)")
    return device
