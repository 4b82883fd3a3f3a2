"""ROIRestrictedPredictor keeps exactly the sliding-window tiles that overlap the grown ROI."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from nnunet_thrombus.inference.roi_predictor import ROIRestrictedPredictor


def _predictor(roi, margin):
    p = object.__new__(ROIRestrictedPredictor)
    p.tile_step_size, p.verbose = 0.5, False
    p.configuration_manager = SimpleNamespace(patch_size=[8, 8, 8])
    p.roi, p.margin, p.last_tiles = roi, margin, (0, 0)
    return p


def test_full_window_without_roi():
    p = _predictor(None, (0, 0, 0))
    slicers = p._internal_get_sliding_window_slicers((24, 24, 24))
    assert len(slicers) == 5 ** 3 and p.last_tiles == (125, 125)   # steps of 4 voxels: 0, 4, 8, 12, 16


@pytest.mark.parametrize("margin, expected", [((0, 0, 0), 1), ((4, 4, 4), 8)])  # starts {0, 4} per axis
def test_only_tiles_touching_the_grown_roi_are_kept(margin, expected):
    roi = np.zeros((24, 24, 24), bool)
    roi[0, 0, 0] = True                                              # corner voxel: only tile (0,0,0) holds it
    p = _predictor(roi, margin)
    kept = p._internal_get_sliding_window_slicers((24, 24, 24))
    assert p.last_tiles == (expected, 125) and len(kept) == expected
    for sl in kept:  # every kept tile overlaps the ROI once grown by the margin
        grown = tuple(slice(max(0, s.start - m), s.stop + m) for s, m in zip(sl[1:], margin))
        assert roi[grown].any()


def test_central_voxel_with_half_patch_margin():
    roi = np.zeros((24, 24, 24), bool)
    roi[12, 12, 12] = True
    p = _predictor(roi, (4, 4, 4))
    p._internal_get_sliding_window_slicers((24, 24, 24))
    # tile starts 0..16 step 4; a tile [s, s+8) grown by 4 holds 12 when s-4 <= 12 < s+12, i.e. s in {4, 8, 12, 16}
    assert p.last_tiles == (4 ** 3, 125)
