"""Loading a trained cascade for prediction, from a resolved model (:func:`nnunet_thrombus.model_folder.resolve_cascade`:
``-d DATASET`` under ``nnUNet_results`` or ``-m FOLDER``, a copy).

Where the model lives, its folds and the files stored with it are :mod:`nnunet_thrombus.model_folder`'s business;
here the checked folders become a ``ThrombusCascadePredictor``, with every fold's weights loaded once so a corrupt or
mixed model fails once, clearly, before any case is read.
"""
from __future__ import annotations

from nnunet_thrombus.model_folder import (COARSE, CHECKPOINT, FINE, CascadeModel, ModelError,
                                          quiet_nnunet)


def load_predictor(model: CascadeModel, folds=None, device: str = "cpu", use_mirroring: bool = True,
                   roi_restrict: bool = True, checkpoint: str = CHECKPOINT, roi_threshold: float | None = None):
    """``ThrombusCascadePredictor`` for ``model``; ``roi_threshold`` None: the model's own
    (``model.calibration.roi``). nnU-Net's trainer-search lines are kept off the console (shown on failure)."""
    roi_threshold = model.calibration.roi.threshold if roi_threshold is None else roi_threshold
    # the predictor module imports torch and nnU-Net: loaded when a model is, not when this module is
    from nnunet_thrombus.inference.cascade_predictor import ThrombusCascadePredictor

    try:
        with quiet_nnunet():
            predictor = ThrombusCascadePredictor(str(model.coarse_dir), str(model.fine_dir), folds=folds,
                                                 device=device, use_mirroring=use_mirroring,
                                                 roi_restrict=roi_restrict, roi_threshold=roi_threshold,
                                                 checkpoint_name=checkpoint)
        for stage, config in ((predictor.coarse, COARSE), (predictor.fine, FINE)):
            # nnU-Net builds the network named in the checkpoint, so a checkpoint of the other stage loads silently
            if stage.configuration_manager.configuration != stage.plans_manager.get_configuration(config).configuration:
                raise ModelError(f"checkpoint in {model.root} does not match its plans: the {config} folder holds "
                                 f"a checkpoint trained as another configuration; copy the right checkpoint")
            # nnU-Net loads only the first fold up front: load every fold once to catch mismatched weights
            net = getattr(stage.network, "_orig_mod", stage.network)
            for params in stage.list_of_parameters[1:]:
                net.load_state_dict(params)
            net.load_state_dict(stage.list_of_parameters[0])
        return predictor
    except (RuntimeError, KeyError) as exc:  # state dict does not fit the architecture in plans.json
        raise ModelError(f"checkpoint in {model.root} does not match its plans ({type(exc).__name__}: "
                         f"{str(exc)[:300]}); the model folder is corrupt or mixed from different trainings") from exc
