"""Loading a trained cascade for prediction: ``-d DATASET`` (under ``nnUNet_results``) or ``-m FOLDER`` (a copy).

Where the model lives, its folds and the files stored with it are :mod:`nnunet_thrombus.model_folder`'s business
(``resolve_model`` is its ``resolve_cascade``); here the checked folders become a ``ThrombusCascadePredictor``,
with every fold's weights loaded once so a corrupt or mixed model fails once, clearly, before any case is read.
"""
from __future__ import annotations

from nnunet_thrombus.model_folder import (  # noqa: F401 (the names predict and the tests use)
    CHECKPOINT,
    DEFAULT_PLANS,
    DEFAULT_TRAINER,
    EXPECTED_CHANNELS,
    LVO_FILE,
    CascadeModel,
    ModelError,
    quiet_nnunet,
    resolve_cascade,
)

#: the resolved model (kept under its former names for callers)
ModelFiles = CascadeModel
resolve_model = resolve_cascade


def load_predictor(model: CascadeModel, folds=None, device: str = "cpu", use_mirroring: bool = True,
                   roi_restrict: bool = True, checkpoint: str = CHECKPOINT, roi_threshold: float | None = None):
    """``ThrombusCascadePredictor`` for ``model``; ``roi_threshold`` None: the model's own (``model.roi_threshold``,
    resolved by ``model_folder``). nnU-Net's trainer-search lines are kept off the console (shown on failure)."""
    roi_threshold = model.roi_threshold if roi_threshold is None else roi_threshold
    from nnunet_thrombus.inference.cascade_predictor import ThrombusCascadePredictor

    try:
        with quiet_nnunet():
            predictor = ThrombusCascadePredictor(str(model.coarse_dir), str(model.fine_dir), folds=folds,
                                                 device=device, use_mirroring=use_mirroring,
                                                 roi_restrict=roi_restrict, roi_threshold=roi_threshold,
                                                 checkpoint_name=checkpoint)
        for stage, config in ((predictor.coarse, "3d_lowres"), (predictor.fine, "3d_cascade_fullres")):
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
