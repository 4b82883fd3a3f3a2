"""nnU-Net's sliding-window predictor, restricted to the tiles that overlap a region of interest.

nnU-Net's cascade slides its fine stage over the whole head (a 320x512x512 CTA at patch 96x160x160 is about 200
windows, times 8 with mirroring). The thrombus is where the coarse stage points, so :class:`ROIRestrictedPredictor`
keeps only the windows that overlap ``roi`` (the coarse candidate region) grown by ``margin`` voxels per axis;
voxels no window visits are background.
"""
from __future__ import annotations

import numpy as np
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

#: logits written where no window was run: background certain, thrombus impossible
UNVISITED_BACKGROUND_LOGIT = 10.0


def _padding_before(image_shape, patch_size) -> list[int]:
    """Offsets acvl_utils' ``pad_nd_image`` puts before each axis when the image is smaller than the patch."""
    return [max(0, p - s) // 2 for s, p in zip(image_shape, patch_size)]


class ROIRestrictedPredictor(nnUNetPredictor):
    """``nnUNetPredictor`` whose sliding window visits only tiles overlapping ``self.roi``.

    Set ``roi`` (bool tensor/array, shape of the preprocessed image without channels) and ``margin`` (voxels per
    axis) before predicting; ``roi=None`` gives nnU-Net's full sliding window. After a prediction,
    ``last_tiles`` holds (visited, total).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.roi: np.ndarray | None = None
        self.margin: tuple[int, ...] = (0, 0, 0)
        self.last_tiles: tuple[int, int] = (0, 0)
        self._unpadded_shape: tuple[int, ...] | None = None

    def _internal_get_sliding_window_slicers(self, image_size):
        slicers = super()._internal_get_sliding_window_slicers(image_size)
        if self.roi is None:
            self.last_tiles = (len(slicers), len(slicers))
            return slicers
        roi = np.asarray(self.roi, dtype=bool)
        before = _padding_before(roi.shape, self.configuration_manager.patch_size)
        padded = np.zeros(tuple(image_size), dtype=bool)
        padded[tuple(slice(b, b + s) for b, s in zip(before, roi.shape))] = roi
        kept = []
        for sl in slicers:
            grown = tuple(slice(max(0, s.start - m), s.stop + m) for s, m in zip(sl[1:], self.margin))
            if padded[grown].any():
                kept.append(sl)
        self.last_tiles = (len(kept), len(slicers))
        return kept

    def predict_sliding_window_return_logits(self, input_image: torch.Tensor):
        logits = super().predict_sliding_window_return_logits(input_image)
        if self.roi is not None:
            unvisited = torch.isnan(logits[0])
            if unvisited.any():
                logits[0][unvisited] = UNVISITED_BACKGROUND_LOGIT
                for c in range(1, logits.shape[0]):
                    logits[c][unvisited] = -UNVISITED_BACKGROUND_LOGIT
        return logits
