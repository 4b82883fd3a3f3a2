"""calibration: the rules fitted on validation folds and stored with a trained model, one owner for all of them.

- :mod:`.artifact`: the one serialization path (dataclass fields <-> JSON, key checks, ``schema_version``);
- :mod:`.components` and :mod:`.postprocessing`: the component keep/drop rule (``postprocessing.json``);
- :mod:`.review`: per-case uncertainty and the review flag (``review_rule.json``);
- :mod:`.lvo`: the occlusion / LVO call and its thresholds (``lvo_thresholds.json``);
- :mod:`.roi`: the fine stage's ROI threshold (``roi_threshold.json``);
- :mod:`.model`: :class:`~.model.ModelCalibration`, every rule of one model loaded once, and the file names;
- :mod:`.validation`: the fits of ``fit-lvo`` on validation predictions.

numpy / scipy / SimpleITK only: no torch, no nnU-Net. ``training`` and ``inference`` import this package, never each
other, to fit or apply a rule; runs of the network a fit needs are passed in by the caller
(:mod:`nnunet_thrombus.inference.validation_fit`).
"""
