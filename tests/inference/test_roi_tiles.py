"""ROIRestrictedPredictor: which windows it runs for a given ROI and margin, and what it returns."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nnunet_thrombus.inference.roi_predictor import (UNVISITED_BACKGROUND_LOGIT, ROIRestrictedPredictor, roi_boxes,
                                                     windows_in)


def _predictor(roi, margin, patch=(8, 8, 8), placement="auto"):
    p = object.__new__(ROIRestrictedPredictor)
    p.tile_step_size, p.verbose = 0.5, False
    p.configuration_manager = SimpleNamespace(patch_size=list(patch))
    p.roi, p.margin, p.placement, p.last_tiles = roi, margin, placement, (0, 0)
    return p


def test_full_window_without_roi():
    p = _predictor(None, (0, 0, 0))
    slicers = p.window_slicers((24, 24, 24))
    assert len(slicers) == 5 ** 3   # steps of 4 voxels: 0, 4, 8, 12, 16
    assert [s.start for s in slicers[1][1:]] == [0, 0, 4]  # nnU-Net's order: the last axis moves fastest


@pytest.mark.parametrize("margin", [(0, 0, 0), (4, 4, 4)])
def test_grid_keeps_the_tiles_holding_the_roi(margin):
    roi = np.zeros((24, 24, 24), bool)
    roi[0, 0, 0] = True                   # corner voxel: only tile (0,0,0) holds it, and [0, 8) covers [0, 5) too
    p = _predictor(roi, margin, placement="grid")
    placement, boxes, n_run, n_full = p.plan_windows(roi.shape)
    assert (placement, boxes, n_run, n_full) == ("grid", [], 1, 125)
    kept = p.window_slicers((24, 24, 24), roi)
    assert [tuple(s.start for s in sl[1:]) for sl in kept] == [(0, 0, 0)]


def test_central_voxel_grid_vs_crops():
    roi = np.zeros((24, 24, 24), bool)
    roi[12, 12, 12] = True
    # grid: tile starts 0..16 step 4; [s, s+8) holds 12 for s in {8, 12}: 2 per axis, together [8, 20) which
    # covers the grown [8, 17)
    assert _predictor(roi, (4, 4, 4), placement="grid").plan_windows(roi.shape)[2:] == (8, 125)
    # crops: box [8, 17) per axis (9 voxels, patch 8): windows at 0 and 1 -> 2 per axis
    placement, boxes, n_run, n_full = _predictor(roi, (4, 4, 4), placement="crops").plan_windows(roi.shape)
    assert placement == "crops" and boxes == [(slice(8, 17),) * 3] and (n_run, n_full) == (8, 125)
    # a tie keeps the grid under "auto"
    assert _predictor(roi, (4, 4, 4), placement="auto").plan_windows(roi.shape)[0] == "grid"


def test_grid_adds_tiles_where_a_wide_margin_is_not_covered():
    roi = np.zeros((24, 24, 24), bool)
    roi[12, 12, 12] = True
    # margin 6: grown [6, 19) per axis, but the 8 tiles holding the voxel (starts {8, 12}) cover only [8, 20)
    p = _predictor(roi, (6, 6, 6), placement="grid")
    kept = p.window_slicers((24, 24, 24), roi)
    starts = {tuple(s.start for s in sl[1:]) for sl in kept}
    assert {(a, b, c) for a in (8, 12) for b in (8, 12) for c in (8, 12)} <= starts
    covered = np.zeros((24, 24, 24), bool)
    for sl in kept:
        covered[sl[1:]] = True
    assert covered[6:19, 6:19, 6:19].all()
    # the greedy cover needs 8 more windows, fewer than the 19 of the symmetric cover (starts {4, 8, 12} per axis)
    assert len(kept) == 16 and p.plan_windows(roi.shape)[2:] == (16, 125)


def test_roi_boxes_grow_merge_and_stay_inside():
    roi = np.zeros((40, 60, 60), bool)
    roi[2, 30, 30] = True            # near the z=0 border: grown box [-4, 9) is shifted to [0, 13)
    roi[20:23, 5:9, 50:52] = True    # a 3x4x2 component
    roi[20, 9, 49] = True            # touches it diagonally: same component (26-connectivity)
    boxes = roi_boxes(roi, (6, 6, 6), (12, 12, 12))
    assert boxes == [(slice(0, 13), slice(24, 37), slice(24, 37)),
                     (slice(14, 29), slice(0, 17), slice(43, 58))]
    # two voxels 10 apart: grown boxes [4,17) and [14,27) overlap -> one box [4, 27)
    roi = np.zeros((40, 40, 40), bool)
    roi[10, 20, 20] = roi[20, 20, 20] = True
    assert roi_boxes(roi, (6, 6, 6), (12, 12, 12)) == [(slice(4, 27), slice(14, 27), slice(14, 27))]
    assert roi_boxes(np.zeros((5, 5, 5), bool), (1, 1, 1), (2, 2, 2)) == []


def test_windows_in_matches_nnunet_grid():
    assert windows_in((24, 24, 24), (8, 8, 8), 0.5) == 125
    assert windows_in((64, 137, 131), (24, 48, 48), 0.5) == 5 * 5 * 5
    assert windows_in((4, 4, 4), (8, 8, 8), 0.5) == 1     # smaller than the patch: padded, one window


class _PointwiseNet(torch.nn.Module):
    """Logits depend on the voxel only (1x1x1 conv), so every window agrees: crops must equal the full window."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 2, 1)
        torch.nn.init.constant_(self.conv.weight, 0.0)
        with torch.no_grad():
            self.conv.weight[1, 0] = 1.0
            self.conv.bias[:] = torch.tensor([0.5, -0.5])

    def forward(self, x):
        return self.conv(x)


def _real_predictor(roi, margin, placement="auto"):
    # constant window weights: nnU-Net's Gaussian at an 8-voxel patch underflows float16 at window corners
    p = ROIRestrictedPredictor(tile_step_size=0.5, use_gaussian=False, use_mirroring=False,
                               perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
    p.network = _PointwiseNet()
    p.configuration_manager = SimpleNamespace(patch_size=[8, 8, 8])
    p.label_manager = SimpleNamespace(num_segmentation_heads=2)
    p.allowed_mirroring_axes = None
    p.roi, p.margin, p.placement = roi, margin, placement
    return p


@pytest.mark.parametrize("placement", ["crops", "grid"])
def test_restricted_prediction_equals_full_inside_and_background_outside(placement):
    torch.manual_seed(0)
    image = torch.randn(1, 20, 24, 24)
    roi = np.zeros((20, 24, 24), bool)
    roi[3, 4, 5] = True
    full = _real_predictor(None, (4, 4, 4)).predict_sliding_window_return_logits(image).float()
    p = _real_predictor(roi, (4, 4, 4), placement)
    got = p.predict_sliding_window_return_logits(image).float()
    visited = ~((got[0] == UNVISITED_BACKGROUND_LOGIT) & (got[1] == -UNVISITED_BACKGROUND_LOGIT))
    # crops: box [0, 9) x [0, 9) x [1, 10) (grown by 4 and shifted inside): 2 windows per axis.
    # grid (starts z 0..12, y/x 0..16, step 4): tiles holding the voxel start at z {0}, y {0, 4}, x {0, 4}:
    # 4 windows covering [0, 8) x [0, 12) x [0, 12), which holds the grown [0, 8) x [0, 9) x [1, 10)
    expected_visited = {"crops": 9 * 9 * 9, "grid": 8 * 12 * 12}[placement]
    assert int(visited.sum()) == expected_visited and bool(visited[3, 4, 5])
    assert p.last_placement == placement and p.last_tiles == ({"crops": 8, "grid": 4}[placement], 4 * 5 * 5)
    torch.testing.assert_close(got[:, visited], full[:, visited], atol=2e-3, rtol=2e-3)  # float16 logits


def test_crops_skip_windows_that_miss_an_l_shaped_roi():
    torch.manual_seed(1)
    image = torch.randn(1, 12, 40, 40)
    roi = np.zeros((12, 40, 40), bool)
    roi[5, 5, 5:31] = True        # an L: one 26-connected component whose box is mostly empty
    roi[5, 5:31, 30] = True
    p = _real_predictor(roi, (4, 4, 4), placement="crops")
    placement, boxes, n_run, n_full = p.plan_windows(roi.shape)
    assert boxes == [(slice(1, 10), slice(1, 35), slice(1, 35))]
    # the box alone holds 2 x 8 x 8 = 128 windows; only those near the two arms run
    assert windows_in((9, 34, 34), (8, 8, 8), 0.5) == 128 and n_run < 128
    got = p.predict_sliding_window_return_logits(image).float()
    full = _real_predictor(None, (4, 4, 4)).predict_sliding_window_return_logits(image).float()
    visited = ~((got[0] == UNVISITED_BACKGROUND_LOGIT) & (got[1] == -UNVISITED_BACKGROUND_LOGIT))
    assert bool(visited[torch.from_numpy(roi)].all()) and not bool(visited[5, 25, 10])  # far inner corner skipped
    assert p.last_tiles == (n_run, n_full)
    torch.testing.assert_close(got[:, visited], full[:, visited], atol=2e-3, rtol=2e-3)


class _ContextNet(torch.nn.Module):
    """Two 3x3x3 convolutions with zero padding: a voxel's logits depend on its neighbours and on where the window
    edge is, so windows at different positions disagree."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.Conv3d(4, 2, 3, padding=1))

    def forward(self, x):
        return self.net(x)


def test_grid_logits_inside_the_roi_are_those_of_the_full_sliding_window():
    torch.manual_seed(2)
    image = torch.randn(1, 20, 28, 28)
    roi = np.zeros((20, 28, 28), bool)
    roi[9:12, 7:9, 14:19] = True      # starts at a window edge (y=7 is the last voxel of the window at 0)
    roi[15, 22, 3] = True
    results = {}
    for placement in ("grid", "crops", None):
        p = _real_predictor(None if placement is None else roi, (4, 4, 4), placement or "grid")
        p.network = _ContextNet()
        results[placement] = p.predict_sliding_window_return_logits(image).float()
    inside = torch.from_numpy(roi)
    assert torch.equal(results["grid"][:, inside], results[None][:, inside])   # bit for bit
    # crops sit elsewhere: the same network gives other logits at some ROI voxels
    assert not torch.equal(results["crops"][:, inside], results[None][:, inside])


@pytest.mark.parametrize("mirror_axes", [None, (0, 2)])
def test_full_sliding_window_is_nnunets_own(mirror_axes):
    """Without an ROI our window loop gives nnU-Net's sliding window bit for bit (its grid, order, padding,
    mirroring and float16 accumulation; written against nnU-Net 2.8)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    torch.manual_seed(5)
    image = torch.randn(1, 6, 21, 19)  # smaller than the patch along z: padded as nnU-Net pads
    results = []
    for cls in (ROIRestrictedPredictor, nnUNetPredictor):
        p = cls(tile_step_size=0.5, use_gaussian=False, use_mirroring=mirror_axes is not None,
                perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
        p.network = _ContextNet()
        p.configuration_manager = SimpleNamespace(patch_size=[8, 8, 8])
        p.label_manager = SimpleNamespace(num_segmentation_heads=2)
        p.allowed_mirroring_axes = mirror_axes
        results.append(p.predict_sliding_window_return_logits(image))
        if cls is nnUNetPredictor:
            assert [sl[1:] for sl in p._internal_get_sliding_window_slicers((8, 21, 19))] == \
                [sl[1:] for sl in ROIRestrictedPredictor.window_slicers(p, (8, 21, 19))]
    assert results[0].shape == (2, 6, 21, 19) and torch.equal(results[0], results[1])
