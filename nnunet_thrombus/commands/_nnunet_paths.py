"""For command entry points that run nnU-Net in their own process: make nnU-Net's trainer lookup find ours.

nnU-Net (>= 2.8) looks for trainers it does not ship in the folders of ``nnUNet_extTrainer``, read from the process
environment when it looks. A command sets that variable for itself (and the processes it starts) here; the library
never writes the environment.
"""
import os


def find_our_trainers() -> str:
    """Prepend our trainer folder to ``nnUNet_extTrainer`` in this process's environment; returns the value."""
    from nnunet_thrombus.nnunet_env import ext_trainer_value

    os.environ["nnUNet_extTrainer"] = ext_trainer_value(os.environ.get("nnUNet_extTrainer"))
    return os.environ["nnUNet_extTrainer"]
