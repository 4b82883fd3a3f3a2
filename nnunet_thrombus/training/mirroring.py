"""Which array axes training mirrors: nnU-Net's all three, the head's left-right axis only, or none.

A head is close to mirror-symmetric about its mid-sagittal plane, and a clot is as likely in the right M2 as in
the left. Flipping a training patch left-right therefore makes a plausible new case (the label flips with it).
Flipping it head-to-feet or front-to-back makes heads that never reach the scanner; nnU-Net flips all three axes
because it knows nothing about anatomy.

Why it matters: a short CPU run without any mirroring learned the side of its few training clots. On the
60-patient evaluation cohort (SYNTHETIC) it found 6 of 6 left M2 clots and 1 of 6 right ones; with the same
images flipped left-right it found 2 of the 5 missed right clots and 0 of 3 found left ones
(docs/results/trust_eval_cpu.md).

The left-right axis of a preprocessed array: nnU-Net keeps SimpleITK's array order (z, y, x) and then transposes by
the plans' ``transpose_forward``. SimpleITK's direction matrix (row-major, 9 numbers) gives, per index axis
i/j/k, its direction in patient coordinates (LPS); the index axis whose direction lies along patient x is the
left-right one (:func:`nnunet_thrombus.measure.location.left_right_axis`, which the mirror comparison of
``calibration.components`` uses too). Oblique or mixed orientations give no single axis.
"""
from __future__ import annotations

import glob
import os
import pickle
from collections.abc import Sequence

from nnunet_thrombus.measure.location import left_right_axis
from nnunet_thrombus.training.overrides import MIRROR_AUGMENT_CHOICES  # noqa: F401 (the choices, named here too)


def dataset_left_right_axis(preprocessed_folder: str, transpose_forward: Sequence[int]) -> int | None:
    """The left-right axis shared by every case of an nnU-Net preprocessed folder (its ``*.pkl`` properties);
    None when the cases disagree, one is oblique, or the folder has no case."""
    axes = set()
    for path in sorted(glob.glob(os.path.join(preprocessed_folder, "*.pkl"))):
        with open(path, "rb") as fh:
            props = pickle.load(fh)
        direction = (props.get("sitk_stuff") or {}).get("direction")
        if direction is None:
            return None
        axes.add(left_right_axis(direction, transpose_forward))
        if len(axes) > 1 or None in axes:
            return None
    return axes.pop() if axes else None


def augmentation_mirror_axes(choice: str, preprocessed_folder: str, transpose_forward: Sequence[int],
                             ndim: int = 3) -> tuple[tuple[int, ...] | None, str]:
    """(mirror axes for nnU-Net's augmentation, one line saying why) for a :data:`MIRROR_AUGMENT_CHOICES` value.

    ``left-right`` falls back to all axes, and says so, when the dataset has no single left-right axis."""
    if choice == "off":
        return None, "mirror augmentation off"
    if choice == "all":
        return tuple(range(ndim)), "mirror augmentation on all axes (nnU-Net's default)"
    axis = dataset_left_right_axis(preprocessed_folder, transpose_forward)
    if axis is None:
        return tuple(range(ndim)), ("mirror augmentation on all axes: the cases share no single left-right axis "
                                    "(oblique or mixed orientations)")
    return (axis,), f"mirror augmentation left-right only (array axis {axis})"
