"""Loading a trained cascade for prediction, from a resolved model (:func:`nnunet_thrombus.model_folder.resolve_cascade`
of ``-d DATASET`` under ``nnUNet_results`` or ``-m FOLDER``, a copy; :func:`resolve_model` from ``ModelOptions``).

Where the model lives, its folds and the files stored with it are :mod:`nnunet_thrombus.model_folder`'s business;
here the checked folders become a ``ThrombusCascadePredictor``, with every fold's weights loaded once so a corrupt or
mixed model fails once, clearly, before any case is read. :func:`roi_choice` says which ROI setting the model runs
with (the user's threshold, else the model's ``roi_threshold.json``), :func:`describe_model` what the report says.
"""
from __future__ import annotations

from nnunet_thrombus.calibration.roi import resolve_roi_threshold
from nnunet_thrombus.inference.options import ModelOptions
from nnunet_thrombus.model_folder import (COARSE, CHECKPOINT, FINE, CascadeModel, ModelError, quiet_nnunet,
                                          resolve_cascade)


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


def resolve_model(options: ModelOptions) -> CascadeModel:
    """The trained cascade ``options`` name: ``options.model`` when it is already a ``CascadeModel``, else its folder
    or ``options.dataset`` under ``nnUNet_results`` (``model_folder.resolve_cascade``; raises ``ModelError``)."""
    if isinstance(options.model, CascadeModel):
        return options.model
    names = {k: v for k, v in (("trainer", options.trainer), ("plans", options.plans)) if v is not None}
    return resolve_cascade(dataset=options.dataset, model_folder=options.model, folds=options.folds, **names)


def roi_choice(options: ModelOptions, model: CascadeModel | None) -> tuple[bool, float | None, str, str | None]:
    """(roi_restrict, roi_threshold, its source, why the ROI was turned off or None) for ``options`` and ``model``.

    A threshold in ``options`` is the user's ("command line"); else the model's ``roi_threshold.json``, which may say
    that no threshold kept every validation clot inside the ROI: the fine stage then looks everywhere. Without a
    model the threshold stays None (the network's own, else the default; :func:`describe_model`)."""
    if options.roi_threshold is not None:
        return options.roi_restrict, options.roi_threshold, "command line", None
    if model is None:
        return options.roi_restrict, None, "default", None
    roi, source = model.calibration.roi, model.calibration.sources["roi"]
    if options.roi_restrict and roi.whole_image:  # fit-roi: the coarse stage misses validation clots
        return False, roi.threshold, source, (f"{model.fine_dir.name}/roi_threshold.json: no threshold kept every "
                                              "validation clot inside the ROI")
    return options.roi_restrict, roi.threshold, source, None


def describe_model(network, options: ModelOptions, model: CascadeModel | None) -> dict:
    """``report.json`` ``model`` (less ``folds`` and per-case fields): the model's description
    (``CascadeModel.describe``; "custom predictor" without one), TTA, ROI restriction, ROI threshold and its source."""
    info = model.describe() if model is not None else {"model": "custom predictor"}
    roi_restrict, threshold, source, why_off = roi_choice(options, model)
    if why_off:
        info["roi_restrict_source"] = why_off
    if hasattr(network, "roi_threshold") and threshold != network.roi_threshold:  # a ready network's own
        threshold, source = network.roi_threshold, "predictor"
    info.update(tta=bool(options.use_tta), roi_restrict=bool(roi_restrict))
    if roi_restrict:
        if threshold is None:
            threshold, source = resolve_roi_threshold()
        info["roi_threshold"] = float(threshold)
        info["roi_threshold_source"] = source
    return info
