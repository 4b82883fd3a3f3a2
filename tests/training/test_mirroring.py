"""Mirror augmentation along the head's left-right axis (nnunet_thrombus.training.mirroring) and its use by the
short-schedule trainers."""
import pickle

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_thrombus.training.mirroring import augmentation_mirror_axes, dataset_left_right_axis, left_right_axis
from nnunet_thrombus.training.overrides import TrainingSettings

IDENTITY = (1, 0, 0, 0, 1, 0, 0, 0, 1)
# rows of the image run anterior-posterior, columns left-right (index axis i along patient y, j along patient x)
SWAPPED_IN_PLANE = (0, 1, 0, 1, 0, 0, 0, 0, 1)
# a sagittal stack: i along y, j along z, k (the slice normal) along x
SAGITTAL = (0, 0, 1, 1, 0, 0, 0, 1, 0)


def _physical_x_after_flip(direction, axis_in_array):
    """Patient x of a marker voxel before and after flipping the array along ``axis_in_array``, plus the change in
    patient y and z: a left-right flip must negate x about the centre and leave y and z alone."""
    img = sitk.Image(8, 6, 5, sitk.sitkFloat32)  # size (i, j, k) -> array (5, 6, 8)
    img.SetDirection(direction)
    img.SetSpacing((0.5, 0.7, 1.1))
    img.SetOrigin((0.0, 0.0, 0.0))
    arr = np.zeros((5, 6, 8), np.float32)
    arr[1, 2, 3] = 1.0
    centre = img.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in img.GetSize()])
    before = img.TransformIndexToPhysicalPoint([3, 2, 1])
    flipped = np.flip(arr, axis=axis_in_array)
    k, j, i = (int(v) for v in np.argwhere(flipped == 1.0)[0])
    after = img.TransformIndexToPhysicalPoint([i, j, k])
    return before, after, centre


@pytest.mark.parametrize("direction,expected", [(IDENTITY, 2), (SWAPPED_IN_PLANE, 1), (SAGITTAL, 0)])
def test_left_right_axis_flips_patient_x_only(direction, expected):
    axis = left_right_axis(direction)
    assert axis == expected
    before, after, centre = _physical_x_after_flip(direction, axis)
    assert after[0] - centre[0] == pytest.approx(-(before[0] - centre[0]))
    assert before[0] != pytest.approx(after[0])
    assert after[1] == pytest.approx(before[1]) and after[2] == pytest.approx(before[2])


def test_left_right_axis_follows_transpose_forward_and_refuses_oblique():
    # nnU-Net moves array axis 2 (x) to position 0 with transpose_forward (2, 0, 1)
    assert left_right_axis(IDENTITY, (2, 0, 1)) == 0
    assert left_right_axis(IDENTITY, (1, 2, 0)) == 1
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)  # 45 degrees in plane: no axis is left-right
    assert left_right_axis((c, -s, 0, s, c, 0, 0, 0, 1)) is None
    c, s = np.cos(np.radians(15)), np.sin(np.radians(15))  # a 15 degree gantry-style tilt still is
    assert left_right_axis((c, -s, 0, s, c, 0, 0, 0, 1)) == 2


def _case(folder, name, direction):
    with open(folder / f"{name}.pkl", "wb") as fh:
        pickle.dump({"sitk_stuff": {"direction": direction, "spacing": (1, 1, 1), "origin": (0, 0, 0)}}, fh)


def test_dataset_axis_needs_every_case_to_agree(tmp_path):
    assert dataset_left_right_axis(str(tmp_path), (0, 1, 2)) is None  # no case
    _case(tmp_path, "A", IDENTITY)
    _case(tmp_path, "B", IDENTITY)
    assert dataset_left_right_axis(str(tmp_path), (0, 1, 2)) == 2
    assert augmentation_mirror_axes("left-right", str(tmp_path), (0, 1, 2)) == \
        ((2,), "mirror augmentation left-right only (array axis 2)")
    _case(tmp_path, "C", SWAPPED_IN_PLANE)
    assert dataset_left_right_axis(str(tmp_path), (0, 1, 2)) is None
    axes, why = augmentation_mirror_axes("left-right", str(tmp_path), (0, 1, 2))
    assert axes == (0, 1, 2) and "no single left-right axis" in why
    assert augmentation_mirror_axes("off", str(tmp_path), (0, 1, 2))[0] is None
    assert augmentation_mirror_axes("all", str(tmp_path), (0, 1, 2))[0] == (0, 1, 2)


class _Base:
    """Stands in for nnUNetTrainer: its three-axis mirroring and the attributes the mixin reads."""

    def __init__(self, folder, transpose=(0, 1, 2)):
        self.preprocessed_dataset_folder = str(folder)
        self.plans_manager = type("PM", (), {"transpose_forward": list(transpose)})()
        self.logged = []

    def print_to_log_file(self, *args):
        self.logged.append(" ".join(str(a) for a in args))

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        self.inference_allowed_mirroring_axes = (0, 1, 2)
        return (-0.5, 0.5), False, [24, 48, 48], (0, 1, 2)


def _trainer(folder, overrides, recipe=None, transpose=(0, 1, 2)):
    from nnunet_thrombus.training.short_run import ShortScheduleMixin

    class Trainer(ShortScheduleMixin, _Base):
        def __init__(self):
            _Base.__init__(self, folder, transpose)
            self.initial_lr, self.weight_decay = 1e-2, 3e-5
            self._apply_short_schedule(overrides)

    if recipe is not None:
        Trainer.recipe = recipe
    return Trainer()


@pytest.mark.parametrize("overrides,recipe,augment,inference", [
    ({}, None, (0, 1, 2), (0, 1, 2)),  # the paper: nnU-Net's mirroring, augmentation and test time
    ({"mirroring": False}, None, (0,), None),  # short runs: left-right only, no test-time mirroring
    ({"mirroring": False, "mirror_augment": "off"}, None, None, None),  # the former short runs
    ({}, {"mirroring": False}, (0,), None),  # the cpuShort recipe
    ({"mirror_augment": "left-right"}, None, (0,), (0, 1, 2)),
])
def test_trainer_mirror_axes(tmp_path, overrides, recipe, augment, inference):
    _case(tmp_path, "A", IDENTITY)
    trainer = _trainer(tmp_path, TrainingSettings(**overrides), recipe and TrainingSettings(**recipe),
                       transpose=(2, 0, 1))  # x moved to the first array axis
    *_, axes = trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    assert axes == augment
    assert trainer.inference_allowed_mirroring_axes == inference
    assert trainer.augmentation_mirror_axes == augment
