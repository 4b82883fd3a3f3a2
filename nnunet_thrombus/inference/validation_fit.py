"""The fits that need the trained model to predict its own validation cases: ``fit-lvo`` and ``fit-roi``.

The rules, their fits and their files are :mod:`nnunet_thrombus.calibration`'s; this module only supplies what a
fit needs from a trained cascade: :class:`ValidationPredictor` (each validation case predicted by the cascade of the
fold that held it out, ``predict``'s code path, mirroring off) and the per-fold ``ThrombusCascadePredictor`` of the
ROI fit. Torch and nnU-Net load when a predictor is built, not on import.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from nnunet_thrombus.calibration import roi as roi_calibration
from nnunet_thrombus.calibration.roi import THRESHOLDS, resolve_roi_threshold
from nnunet_thrombus.calibration.validation import fit_validation_rules
from nnunet_thrombus.model_folder import COARSE, FINE, validation_cases

log = logging.getLogger(__name__)


def _cascade_predictor(coarse_dir, fine_dir, fold, **kwargs):
    """``ThrombusCascadePredictor`` of one fold (torch and nnU-Net load here)."""
    from nnunet_thrombus.inference.cascade_predictor import ThrombusCascadePredictor

    return ThrombusCascadePredictor(str(coarse_dir), str(fine_dir), folds=(int(fold),), **kwargs)


class ValidationPredictor:
    """Each validation case predicted by the cascade of the fold that held it out, one ``ThrombusCascadePredictor``
    per fold, loaded on first use. ``coarse_dir`` / ``fine_dir``: the stage folders."""

    def __init__(self, coarse_dir, fine_dir, device: str = "cpu", use_mirroring: bool = False):
        self.coarse_dir, self.fine_dir = str(coarse_dir), str(fine_dir)
        self.device, self.use_mirroring = device, use_mirroring
        self._fold, self._predictor = None, None

    @classmethod
    def beside(cls, fine_dir, **kwargs) -> "ValidationPredictor | None":
        """For a ``3d_cascade_fullres`` folder with its ``3d_lowres`` sibling; None otherwise."""
        fine = Path(fine_dir)
        if not fine.name.endswith(FINE):
            return None
        coarse = fine.with_name(fine.name[: -len(FINE)] + COARSE)
        return cls(coarse, fine, **kwargs) if coarse.is_dir() else None

    def probability(self, fold: str, images: np.ndarray, spacing) -> np.ndarray:
        """Thrombus probability (Z, Y, X) of ``images`` (C, Z, Y, X: CTA, NCCT) by fold ``fold``'s cascade."""
        if self._fold != fold:
            threshold, _ = resolve_roi_threshold(self.fine_dir)
            self._predictor = _cascade_predictor(self.coarse_dir, self.fine_dir, fold, device=self.device,
                                                 use_mirroring=self.use_mirroring, roi_threshold=threshold)
            self._fold = fold
        return np.asarray(self._predictor.predict(np.asarray(images, np.float32), spacing).probability, np.float32)


def fit_lvo_from_validation(fine_model_dir, raw_dataset_dir, metadata_csv=None) -> dict:
    """``fit-lvo``: :func:`~nnunet_thrombus.calibration.validation.fit_validation_rules` on the fine stage's
    validation predictions; where nnU-Net saved no probabilities (``--npz``), a cascade predicts its validation cases
    itself (:class:`ValidationPredictor`)."""
    fine = Path(fine_model_dir)
    have_npz = any(fine.glob("fold_*/validation/*.npz"))
    predictor = None if have_npz else ValidationPredictor.beside(fine)
    return fit_validation_rules(fine, raw_dataset_dir, validation_cases(fine), metadata_csv=metadata_csv,
                                predictor=predictor)


def fit_roi_threshold(coarse_dir, fine_dir, raw_dataset_dir, device: str = "cpu", thresholds=THRESHOLDS,
                      progress=log.info) -> dict:
    """``fit-roi``: :func:`~nnunet_thrombus.calibration.roi.fit_roi_threshold` with each fold's cascade (mirroring
    off) on that fold's validation cases; writes ``roi_threshold.json`` in ``fine_dir`` and returns its content."""
    def make_predictor(fold):
        return _cascade_predictor(coarse_dir, fine_dir, fold, device=device, use_mirroring=False)

    return roi_calibration.fit_roi_threshold(fine_dir, raw_dataset_dir, validation_cases(fine_dir), make_predictor,
                                             thresholds=thresholds, progress=progress)
