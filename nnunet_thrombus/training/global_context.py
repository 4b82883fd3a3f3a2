"""Training plumbing for the global coarse context: where each fine patch came from, and the whole-case features.

nnU-Net's data loader crops a patch (plus a margin for rotation) from the preprocessed case, then its transforms
rotate, scale and mirror it. To sample the whole-case coarse features at the right place, every patch must carry
its voxels' positions in the case through exactly those transforms:

1. :class:`PositionDataLoader` (an ``nnUNetDataLoader``) remembers the crop box it drew and hands the transforms a
   homogeneous position field of the crop as the ``regression_target`` (batchgeneratorsv2's spatial and mirror
   transforms move it with the image, with linear interpolation; intensity transforms leave it alone);
2. :class:`StashPositions`, inserted right after the last spatial transform, moves it under a key no later
   transform touches;
3. the positions come back as the last :data:`POSITION_CHANNELS` channels of ``batch["data"]``; the trainer splits
   them off (:func:`split_positions`) and samples the features of the case's one coarse pass
   (:class:`CoarseContextBank`, cached) at them.

Positions follow :mod:`nnunet_thrombus.networks.coarse_context` (fine case voxel indices, homogeneous).
"""
from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader

from nnunet_thrombus.networks.coarse_context import CoarseContext, position_field

#: homogeneous position channels appended to the data: (z*w, y*w, x*w, w)
POSITION_CHANNELS = 4
POSITION_KEY = "thrombus_case_positions"


class StashPositions(BasicTransform):
    """Move ``regression_target`` (the position field) to :data:`POSITION_KEY`, out of reach of later transforms."""

    def apply(self, data_dict, **params):
        data_dict[POSITION_KEY] = data_dict.pop("regression_target")
        return data_dict


def _moves_positions(transform) -> bool:
    """Whether ``transform`` (or the one it wraps) changes regression targets geometrically."""
    inner = getattr(transform, "transform", transform)
    own = type(inner)._apply_to_regr_target
    return own is not BasicTransform._apply_to_regr_target


def with_position_stash(transforms: ComposeTransforms) -> ComposeTransforms:
    """A copy of nnU-Net's transform list with :class:`StashPositions` right after its last spatial transform
    (first, when it has none, as the validation pipeline)."""
    if not isinstance(transforms, ComposeTransforms):
        raise ValueError(f"expected nnU-Net's ComposeTransforms, got {type(transforms).__name__}")
    items = list(transforms.transforms)
    if any(isinstance(t, StashPositions) for t in items):
        return transforms
    last = max([i for i, t in enumerate(items) if _moves_positions(t)], default=-1)
    return ComposeTransforms(items[:last + 1] + [StashPositions()] + items[last + 1:])


class _PositionedTransforms:
    def __init__(self, loader: "PositionDataLoader", transforms: ComposeTransforms):
        self.loader = loader
        self.transforms = with_position_stash(transforms)

    def __call__(self, **data_dict):
        start = self.loader.last_crop_start
        data_dict["regression_target"] = position_field(start, data_dict["image"].shape[1:])
        out = self.transforms(**data_dict)
        positions = out.pop(POSITION_KEY, None)
        if positions is None:
            raise RuntimeError("the transform pipeline dropped the patch positions (no StashPositions ran)")
        out["image"] = torch.cat([out["image"], positions.to(out["image"].dtype)], 0)
        return out


class PositionDataLoader(nnUNetDataLoader):
    """``nnUNetDataLoader`` whose samples carry their voxels' case positions as :data:`POSITION_CHANNELS` extra
    (last) data channels. Everything else (sampling, cropping, transforms) is nnU-Net's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.transforms is None:
            raise ValueError("PositionDataLoader needs nnU-Net's transforms (at least the validation pipeline)")
        self.transforms = _PositionedTransforms(self, self.transforms)
        self.last_crop_start = None

    def get_bbox(self, *args, **kwargs):
        lbs, ubs = super().get_bbox(*args, **kwargs)
        self.last_crop_start = [int(v) for v in lbs]
        return lbs, ubs


def split_positions(data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """data: (B, C + 4, *s) from :class:`PositionDataLoader` -> (network input (B, C, *s), positions (B, 4, *s))."""
    return data[:, :-POSITION_CHANNELS], data[:, -POSITION_CHANNELS:]


class CoarseContextBank:
    """Whole-case coarse contexts of training cases, computed once by the frozen coarse branch and kept in memory
    (least recently used dropped beyond ``budget_bytes``; 0 = compute every time).

    ``load_images(key)`` returns the case's fine image channels (C_img, *S) as a numpy array; ``compute(images)``
    is the network's ``whole_case_coarse_pass``. Features are stored on ``store_device`` (CPU by default): sampling
    moves only the block a patch touches. ``stats`` counts hits, misses and the seconds spent computing.
    """

    def __init__(self, load_images, compute, device: torch.device, budget_bytes: int,
                 store_device: torch.device = torch.device("cpu")):
        self.load_images = load_images
        self.compute = compute
        self.device = device
        self.budget_bytes = int(budget_bytes)
        self.store_device = store_device
        self._cache: OrderedDict[str, CoarseContext] = OrderedDict()
        self.stats = {"hits": 0, "misses": 0, "compute_s": 0.0, "stored_bytes": 0}

    def __getitem__(self, key: str) -> CoarseContext:
        if key in self._cache:
            self._cache.move_to_end(key)
            self.stats["hits"] += 1
            return self._cache[key]
        self.stats["misses"] += 1
        t0 = time.perf_counter()
        images = torch.from_numpy(np.ascontiguousarray(self.load_images(key), dtype=np.float32))[None]
        ctx = self.compute(images.to(self.device))
        ctx = CoarseContext(logits=ctx.logits[:, :0].to(self.store_device),
                            features=[f.to(self.store_device) for f in ctx.features], case_shape=ctx.case_shape,
                            coarse_shape=ctx.coarse_shape, padded_shape=ctx.padded_shape)
        self.stats["compute_s"] += time.perf_counter() - t0
        if ctx.nbytes <= self.budget_bytes:
            self._cache[key] = ctx
            while sum(c.nbytes for c in self._cache.values()) > self.budget_bytes:
                self._cache.popitem(last=False)
        self.stats["stored_bytes"] = sum(c.nbytes for c in self._cache.values())
        return ctx


def position_dataloaders(trainer):
    """(training, validation) batch generators of ``trainer`` (an nnUNetTrainer) whose loaders are
    :class:`PositionDataLoader`: what nnU-Net's ``nnUNetTrainer.get_dataloaders`` returns, with our loader class.

    nnU-Net 2.8 has no hook for the loader class (``get_dataloaders`` names ``nnUNetDataLoader`` itself), so this
    follows that method step by step: the trainer's own transforms, patch sizes, batch size and foreground
    oversampling, and its augmenter choice (one process, or ``nnUNet_n_proc_DA`` worker processes).
    Checked against nnunetv2 2.8.x (``tests/training/test_global_context.py`` compares the two).
    """
    from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
    from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

    t = trainer
    if t.dataset_class is None:
        t.dataset_class = infer_dataset_class(t.preprocessed_dataset_folder)
    patch_size = t.configuration_manager.patch_size
    scales = t._get_deep_supervision_scales()
    rotation, dummy_2d, initial_patch_size, mirror_axes = \
        t.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    labels = t.label_manager
    regions = labels.foreground_regions if labels.has_regions else None
    train_transforms = t.get_training_transforms(
        patch_size, rotation, scales, mirror_axes, dummy_2d,
        use_mask_for_norm=t.configuration_manager.use_mask_for_norm, is_cascaded=t.is_cascaded,
        foreground_labels=labels.foreground_labels, regions=regions, ignore_label=labels.ignore_label)
    val_transforms = t.get_validation_transforms(scales, is_cascaded=t.is_cascaded,
                                                 foreground_labels=labels.foreground_labels, regions=regions,
                                                 ignore_label=labels.ignore_label)
    dataset_tr, dataset_val = t.get_tr_and_val_datasets()
    common = dict(oversample_foreground_percent=t.oversample_foreground_percent, sampling_probabilities=None,
                  pad_sides=None, probabilistic_oversampling=t.probabilistic_oversampling)
    dl_tr = PositionDataLoader(dataset_tr, t.batch_size, initial_patch_size, patch_size, labels,
                               transforms=train_transforms, **common)
    dl_val = PositionDataLoader(dataset_val, t.batch_size, patch_size, patch_size, labels,
                                transforms=val_transforms, **common)
    workers = get_allowed_n_proc_DA()
    if workers == 0:
        gen_tr, gen_val = SingleThreadedAugmenter(dl_tr, None), SingleThreadedAugmenter(dl_val, None)
    else:
        pin = t.device.type == "cuda"
        gen_tr = NonDetMultiThreadedAugmenter(data_loader=dl_tr, transform=None, num_processes=workers,
                                              num_cached=max(6, workers // 2), seeds=None, pin_memory=pin,
                                              wait_time=0.002)
        gen_val = NonDetMultiThreadedAugmenter(data_loader=dl_val, transform=None, num_processes=max(1, workers // 2),
                                               num_cached=max(3, workers // 4), seeds=None, pin_memory=pin,
                                               wait_time=0.002)
    next(gen_tr)  # start the workers, as nnU-Net does
    next(gen_val)
    return gen_tr, gen_val
