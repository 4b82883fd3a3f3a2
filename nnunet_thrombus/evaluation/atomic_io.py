"""The evaluation package's name for :mod:`nnunet_thrombus.atomic_io`, the one module of atomic writers.

Kept so ``from nnunet_thrombus.evaluation.atomic_io import write_json`` keeps working; it defines no writer itself.
"""
from nnunet_thrombus.atomic_io import save_figure, write_csv, write_json, write_text  # noqa: F401
