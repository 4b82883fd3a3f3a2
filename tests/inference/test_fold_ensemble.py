"""Fold ensemble with spread: same mean logits as nnU-Net's loop, exact per-voxel std and votes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nnunet_thrombus.inference.fold_ensemble import FoldSpread, ensemble_logits


class _Net:
    def __init__(self):
        self.w = None

    def load_state_dict(self, params):
        self.w = params["w"]


class _Predictor:
    """Fold k's logits: background 0, thrombus logit = w_k everywhere on a (2, 1, 1, 2) grid."""

    def __init__(self, ws):
        self.list_of_parameters = [{"w": w} for w in ws]
        self.network = _Net()

    @torch.inference_mode()  # as nnU-Net's own: the logits are inference tensors
    def predict_sliding_window_return_logits(self, data):
        fg = torch.tensor([[[self.network.w, -self.network.w]]], dtype=torch.float32)
        return torch.stack([torch.zeros_like(fg), fg])


def _to_grid(logits):
    return (1 - torch.softmax(logits, 0)[0]).numpy()


def test_mean_logits_and_spread():
    ws = [0.0, np.log(3.0), np.log(1 / 3.0)]          # probabilities 0.5, 0.75, 0.25 at voxel 0
    spread = FoldSpread(_to_grid)
    logits = ensemble_logits(_Predictor(ws), None, spread)
    assert logits[1, 0, 0, 0].item() == pytest.approx(np.mean(ws))
    res = spread.result()
    p = np.array([0.5, 0.75, 0.25])
    assert res["n_folds"] == 3 and res["std"][0, 0, 0] == pytest.approx(p.std(), abs=1e-6)
    assert res["votes"][0, 0].tolist() == [1, 1]        # voxel 0: only 0.75 > 0.5; voxel 1: only 1 - 0.25 = 0.75


def test_one_fold_has_no_spread():
    spread = FoldSpread(_to_grid)
    logits = ensemble_logits(_Predictor([1.0]), None, spread)
    assert logits[1, 0, 0, 0].item() == pytest.approx(1.0) and spread.result() is None and spread.n == 0


class _ContextPredictor(_Predictor):
    """Global coarse context: fold k's windows see context k, which adds to its thrombus logit."""

    @torch.inference_mode()
    def predict_with_context(self, data, context):
        return self.predict_sliding_window_return_logits(data) + torch.tensor([0.0, context]).view(2, 1, 1, 1)


def test_each_fold_gets_its_own_context():
    """Two folds (e.g. two seeds), one coarse context each: the mean of (w_k + c_k), with inference tensors."""
    spread = FoldSpread(_to_grid)
    logits = ensemble_logits(_ContextPredictor([1.0, 2.0]), None, spread, contexts=[10.0, 20.0])
    assert logits[1, 0, 0, 0].item() == pytest.approx((11.0 + 22.0) / 2) and spread.n == 2
    with pytest.raises(ValueError, match="2 coarse contexts for 3 folds"):
        ensemble_logits(_ContextPredictor([1.0, 2.0, 3.0]), None, None, contexts=[1.0, 2.0])
