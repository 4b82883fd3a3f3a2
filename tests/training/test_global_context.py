"""Global coarse context: patches read the whole-case coarse pass at their own positions, in training and inference."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "networks"))
from networks_testlib import tiny_arch  # noqa: E402

from nnunet_thrombus.inference.roi_predictor import ROIRestrictedPredictor  # noqa: E402
from nnunet_thrombus.networks.cascade_net import MissingCoarseContextError, ThrombusCascadeNet  # noqa: E402
from nnunet_thrombus.training.global_context import (CoarseContextBank, PositionDataLoader,  # noqa: E402
                                                     _PositionedTransforms, split_positions)
from nnunet_thrombus.training.trainer import ThrombusCascadeTrainer  # noqa: E402


def _net(n_img=2, context="global", seed=0):
    torch.manual_seed(seed)
    net = ThrombusCascadeNet(input_channels=n_img + 1, num_classes=2, deep_supervision=False,
                             coarse_context=context, **tiny_arch(norm=nn.BatchNorm3d))
    return net.eval()


class PositionCoarse(nn.Module):
    """A stand-in stage-1 network whose features ARE its input (case-position ramps), pooled per level."""

    total_stride = [2, 4, 4]
    decoder_feature_channels = [3, 3]

    def forward_with_features(self, x):
        return x[:, :2], [x, F.avg_pool3d(x, (1, 2, 2))]


def _ramps(start, size):
    axes = [torch.arange(a, a + n, dtype=torch.float32) for a, n in zip(start, size)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def test_positions_survive_rotation_scaling_and_mirroring():
    """Under a known rotation + scaling (and nnU-Net's mirroring), the features a patch samples from the whole-case
    pass equal the case position of each of its voxels, which the image itself (position ramps) carries through
    batchgeneratorsv2's own resampling."""
    case_shape, crop_start, crop, patch = (40, 64, 64), (6, 10, 12), (28, 44, 44), (16, 24, 24)
    net = _net(n_img=3)
    net.coarse_branch = PositionCoarse()
    ctx = net.whole_case_coarse_pass(_ramps((0, 0, 0), case_shape)[None])
    assert ctx.coarse_shape == (23, 37, 37) and ctx.padded_shape == (24, 40, 40)
    spatial = SpatialTransform(patch, patch_center_dist_from_border=0, random_crop=False, p_elastic_deform=0,
                               p_rotation=1, rotation=(0.4, 0.4), p_scaling=1, scaling=(1.25, 1.25),
                               p_synchronize_scaling_across_axes=1,
                               bg_style_seg_sampling=False)
    transforms = _PositionedTransforms(SimpleNamespace(last_crop_start=list(crop_start)),
                                       ComposeTransforms([spatial, MirrorTransform((0, 1, 2))]))
    torch.manual_seed(3)
    out = transforms(image=_ramps(crop_start, crop), segmentation=torch.zeros((1, *crop), dtype=torch.int16))
    image, positions = split_positions(out["image"][None])
    assert image.shape[1:] == (3, *patch) and positions.shape[1:] == (4, *patch)
    assert not torch.allclose(image[0, 0], _ramps(crop_start, patch)[0])  # really rotated / scaled
    features = net.context_features(ctx, positions)
    level0, level1 = features[0][0], features[1][0]
    # interior: away from the case border (resize clamps there) and from where the transform padded
    inside = (positions[0, 3] > 0.999)
    for a, s in enumerate(case_shape):
        inside &= (image[0, a] > 4) & (image[0, a] < s - 6)
    assert inside.sum() > 1000
    err = (level0 - image[0]).abs().amax(0)[inside]
    assert float(err.max()) < 0.02, float(err.max())
    pooled = F.avg_pool3d(image, (1, 2, 2))[0]  # level 1: the positions of the level's voxel centres
    inside1 = F.avg_pool3d(inside[None, None].float(), (1, 2, 2))[0, 0] == 1
    assert float((level1 - pooled).abs().amax(0)[inside1].max()) < 0.02


def _predictor(net, patch, mirroring=False):
    pred = ROIRestrictedPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring,
                                  perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                                  verbose_preprocessing=False, allow_tqdm=False)
    pred.network = net
    pred.configuration_manager = SimpleNamespace(patch_size=list(patch))
    pred.label_manager = SimpleNamespace(num_segmentation_heads=2)
    pred.list_of_parameters = [net.state_dict()]
    pred.allowed_mirroring_axes = (0, 1, 2)
    return pred


class Spy(nn.Module):
    """Records what the predictor hands the network; ``module`` is unwrapped like DDP's."""

    def __init__(self, net):
        super().__init__()
        self.module = net
        self.calls = []

    def forward(self, x, coarse_features=None):
        self.calls.append((x.clone(), None if coarse_features is None else [f.clone() for f in coarse_features]))
        return self.module(x, coarse_features=coarse_features)


class _Cases:
    def __init__(self, data):
        self.identifiers = ["case_a"]
        self.data = data

    def __len__(self):
        return 1

    def load_case(self, key):
        seg = np.zeros((1, *self.data.shape[1:]), np.int16)
        return self.data, seg, None, {"class_locations": {1: np.zeros((0, 4), int)}}


def test_training_and_inference_give_a_patch_the_same_features(monkeypatch):
    torch.manual_seed(0)
    shape, patch = (12, 20, 20), (8, 12, 12)
    case = torch.randn(3, *shape)  # CTA, NCCT, coarse segmentation one-hot
    net = _net()
    steps = compute_steps_for_sliding_window(shape, patch, 0.5)
    start = [steps[0][1], steps[1][2], steps[2][0]]  # one window of nnU-Net's grid
    monkeypatch.setattr(nnUNetDataLoader, "get_bbox",
                        lambda self, *a, **k: (start, [s + p for s, p in zip(start, patch)]))
    loader = PositionDataLoader(_Cases(case.numpy()), 1, patch, patch,
                                SimpleNamespace(all_labels=[0, 1], has_ignore_label=False),
                                transforms=ComposeTransforms([]))
    batch = loader.generate_train_batch()
    bank = CoarseContextBank(lambda key: case[:2].numpy(), net.whole_case_coarse_pass, torch.device("cpu"), 2 ** 30)
    trainer = SimpleNamespace(context_bank=lambda: bank, network=net, device=torch.device("cpu"))
    batch, train_features = ThrombusCascadeTrainer.batch_context(trainer, batch)
    assert tuple(batch["data"].shape) == (1, 3, *patch)
    crop = case[(slice(None), *(slice(a, a + p) for a, p in zip(start, patch)))]
    torch.testing.assert_close(batch["data"][0], crop)

    spy = Spy(net)
    pred = _predictor(spy, patch)
    pred.predict_sliding_window_return_logits(case)
    window = [f for x, f in spy.calls if torch.equal(x[0], crop)]
    assert len(window) == 1 and len(spy.calls) == np.prod([len(s) for s in steps])
    for a, b in zip(train_features, window[0]):
        assert torch.equal(a, b)
    assert bank.stats["misses"] == 1 and pred.coarse_passes == 1


def _count_coarse_calls(net):
    calls = []
    inner = net.coarse_branch.forward_with_features

    def counted(x):
        calls.append(tuple(x.shape))
        return inner(x)

    net.coarse_branch.forward_with_features = counted
    return calls


@pytest.mark.parametrize("context, expected", [("global", 1), ("patch", 8 * 8)])
def test_coarse_pass_runs_once_per_case(context, expected):
    torch.manual_seed(0)
    net = _net(context=context)
    calls = _count_coarse_calls(net)
    pred = _predictor(net, (8, 12, 12), mirroring=True)
    logits = pred.predict_sliding_window_return_logits(torch.randn(3, 12, 18, 18))
    assert logits.shape == (2, 12, 18, 18) and torch.isfinite(logits).all()
    assert len(calls) == expected  # 8 windows x 8 mirrorings re-run the patch branch; global: one whole-case pass
    if context == "global":
        assert calls[0] == (1, 2, 8, 12, 12)  # round((12, 18, 18) / 1.73) = (7, 10, 10), padded to strides (2, 4, 4)


def test_fold_contexts_one_pass_per_fold_and_restricted_windows_match_full():
    from nnunet_thrombus.inference.fold_ensemble import ensemble_logits

    torch.manual_seed(0)
    net = _net()
    other = _net(seed=1)
    calls = _count_coarse_calls(net)
    pred = _predictor(net, (8, 12, 12))
    pred.list_of_parameters = [net.state_dict(), other.state_dict()]
    case = torch.randn(3, 16, 24, 24)
    contexts = pred.whole_case_contexts(case[:2])
    assert len(calls) == 2 and pred.coarse_passes == 2
    full = ensemble_logits(pred, case, contexts=contexts)
    assert len(calls) == 2  # windows only sample
    roi = np.zeros((16, 24, 24), bool)
    roi[8, 12, 12] = True
    pred.roi, pred.margin = roi, (4, 6, 6)
    part = ensemble_logits(pred, case, contexts=contexts)
    visited = ~torch.isclose(part[0].float(), torch.tensor(10.0))
    assert visited[8, 12, 12] and pred.last_tiles[0] < pred.last_tiles[1]
    # inside the ROI every window of the full grid that covers it ran, with the same context: same logits
    torch.testing.assert_close(part[:, torch.from_numpy(roi)], full[:, torch.from_numpy(roi)])


def test_plain_nnunet_call_on_a_global_model_fails_with_the_command_to_use():
    net = _net()
    with pytest.raises(MissingCoarseContextError, match="nnunet_thrombus predict"):
        net(torch.randn(1, 3, 8, 12, 12))


def test_positions_pass_nnunets_own_cascade_training_pipeline():
    """nnU-Net's full training transforms (cascade: one-hot of the previous stage, its random morphology, deep
    supervision) keep the positions: the stash sits right after the mirror transform, and the image gains them as
    4 last channels after the segmentation one-hot."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_thrombus.training.global_context import StashPositions, with_position_stash

    patch, crop = (16, 24, 24), (24, 36, 36)
    pipeline = nnUNetTrainer.get_training_transforms(
        patch, (-0.5, 0.5), [[1, 1, 1], [0.5, 0.5, 0.5]], (0, 1, 2), False, is_cascaded=True, foreground_labels=[1])
    stashed = with_position_stash(pipeline)
    names = [type(getattr(t, "transform", t)).__name__ for t in stashed.transforms]
    assert names[names.index("StashPositions") - 1] == "MirrorTransform"
    assert sum(isinstance(t, StashPositions) for t in stashed.transforms) == 1
    transforms = _PositionedTransforms(SimpleNamespace(last_crop_start=[3, 5, 7]), pipeline)
    torch.manual_seed(0)
    seg = torch.zeros((2, *crop), dtype=torch.int16)
    seg[:, 10:14, 15:20, 15:20] = 1  # reference and previous-stage segmentation
    out = transforms(image=torch.randn(2, *crop), segmentation=seg)
    assert out["image"].shape == (2 + 1 + 4, *patch)  # CTA, NCCT, one-hot previous stage, positions
    w = out["image"][-1]
    assert float(w[8, 12, 12]) == pytest.approx(1.0, abs=1e-4)
    centre = out["image"][-4:-1, 8, 12, 12] / w[8, 12, 12]
    # the patch centre maps near the crop centre (rotation/scaling about it), in case voxels
    assert torch.allclose(centre, torch.tensor([3 + 12.0, 5 + 18.0, 7 + 18.0]), atol=1.5)


def test_position_dataloaders_follow_nnunets_get_dataloaders(monkeypatch):
    """nnU-Net has no hook for the loader class, so ``position_dataloaders`` follows its ``get_dataloaders``: the
    same loaders (batch, patch sizes, oversampling, augmenter, transforms) with PositionDataLoader, whose batches
    carry the 4 position channels more."""
    from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_thrombus.training.global_context import position_dataloaders

    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    patch = (8, 12, 12)
    case = np.random.default_rng(0).normal(size=(2, 12, 20, 20)).astype(np.float32)
    t = object.__new__(nnUNetTrainer)
    t.dataset_class, t.is_cascaded, t.batch_size, t.device = _Cases, False, 2, torch.device("cpu")
    t.oversample_foreground_percent, t.probabilistic_oversampling = 0.33, False
    t.configuration_manager = SimpleNamespace(patch_size=list(patch), use_mask_for_norm=[False, False])
    t.label_manager = SimpleNamespace(foreground_labels=[1], has_regions=False, foreground_regions=None,
                                      ignore_label=None, all_labels=[0, 1], has_ignore_label=False)
    t._get_deep_supervision_scales = lambda: None
    t.configure_rotation_dummyDA_mirroring_and_inital_patch_size = lambda: ((0.0, 0.0), False, (10, 14, 14), (0,))
    t.get_tr_and_val_datasets = lambda: (_Cases(case), _Cases(case))
    theirs, ours = nnUNetTrainer.get_dataloaders(t), position_dataloaders(t)
    for a, b, crop in zip(theirs, ours, ((10, 14, 14), patch)):
        assert type(a) is type(b) is SingleThreadedAugmenter
        la, lb = a.data_loader, b.data_loader
        assert type(la) is nnUNetDataLoader and type(lb) is PositionDataLoader
        for attr in ("batch_size", "patch_size", "final_patch_size", "oversample_foreground_percent",
                     "need_to_pad"):
            assert np.array_equal(getattr(la, attr), getattr(lb, attr)), attr
        assert tuple(la.patch_size) == crop
        assert [type(x).__name__ for x in la.transforms.transforms] == \
            [type(x).__name__ for x in lb.transforms.transforms.transforms if type(x).__name__ != "StashPositions"]
        ba, bb = next(a), next(b)
        assert tuple(bb["data"].shape) == (2, 2 + 4, *patch) and tuple(ba["data"].shape) == (2, 2, *patch)
