"""The fold ensemble of one nnU-Net predictor, keeping how much the folds disagree.

:func:`ensemble_logits` returns what ``nnUNetPredictor.predict_logits_from_preprocessed_data`` returns (each fold's
weights loaded in turn, sliding-window logits summed in fold order on the CPU, divided by the number of folds) and,
with two or more folds, feeds each fold's logits to a :class:`FoldSpread`. The spread keeps running sums of the folds'
thrombus probabilities on the input grid, so memory does not grow with the number of folds, and gives per-voxel
standard deviation (``std``, float32) and the number of folds with p > 0.5 (``votes``, uint8), both (Z, Y, X).
:mod:`nnunet_thrombus.calibration.review` turns them into the report's ``fold_std_in_clot`` and
``fold_disagreement``. A fold loop of its own (e.g. one that hands each fold a coarse context) calls
``FoldSpread.add`` with each fold's logits the same way.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


class FoldSpread:
    """Running per-voxel statistics of the folds' probabilities. ``to_input_grid``: one fold's logits -> thrombus
    probability (Z, Y, X) numpy on the input grid."""

    def __init__(self, to_input_grid: Callable):
        self.to_input_grid = to_input_grid
        self.n = 0
        self._s1 = self._s2 = self._votes = None

    def add(self, logits) -> None:
        prob = np.asarray(self.to_input_grid(logits), dtype=np.float32)
        if self._s1 is None:
            self._s1, self._s2 = np.zeros_like(prob), np.zeros_like(prob)
            self._votes = np.zeros(prob.shape, np.uint8)
        self._s1 += prob
        self._s2 += prob * prob
        self._votes += prob > 0.5
        self.n += 1

    def result(self) -> dict | None:
        """{"std", "votes", "n_folds"}, or None with fewer than two folds added."""
        if self.n < 2:
            return None
        mean = self._s1 / self.n
        std = np.sqrt(np.clip(self._s2 / self.n - mean * mean, 0.0, None)).astype(np.float32)
        return {"std": std, "votes": self._votes, "n_folds": self.n}


def ensemble_logits(predictor, data, spread: FoldSpread | None = None, contexts: list | None = None):
    """Mean logits (C, z, y, x), a CPU torch tensor, of every fold of ``predictor`` (an initialised
    ``nnUNetPredictor``: ``list_of_parameters``, ``network``, ``predict_sliding_window_return_logits``) on its
    preprocessed ``data``; with two or more folds each fold's logits also go to ``spread``. ``contexts``: one
    whole-case coarse context per fold (global coarse context; ``ROIRestrictedPredictor.predict_with_context``)."""
    params = list(predictor.list_of_parameters)
    if contexts is not None and len(contexts) != len(params):
        raise ValueError(f"{len(contexts)} coarse contexts for {len(params)} folds")
    net = getattr(predictor.network, "_orig_mod", predictor.network)
    total = None
    for k, p in enumerate(params):
        net.load_state_dict(p)
        if contexts is None:
            logits = predictor.predict_sliding_window_return_logits(data).to("cpu")
        else:
            logits = predictor.predict_with_context(data, contexts[k]).to("cpu")
        if spread is not None and len(params) > 1:
            spread.add(logits)
        # out of place: nnU-Net returns inference-mode tensors, which refuse in-place updates outside that mode
        total = logits if total is None else total + logits
    return total / len(params) if len(params) > 1 else total
