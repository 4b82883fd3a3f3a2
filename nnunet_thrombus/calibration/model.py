"""Every fitted rule of one trained model, loaded once: :class:`ModelCalibration`.

The files sit in the fine-stage model folder beside ``plans.json`` and ``dataset.json`` (as nnU-Net keeps its
``postprocessing.pkl``); :data:`FILES` names them, the one place those names are written down:

=====================  ================================================  ==================================
file                   rule                                              written by
=====================  ================================================  ==================================
postprocessing.json    component keep/drop rule (:class:`Postprocessing`)  ``fit-lvo``
review_rule.json       review flag thresholds (:class:`ReviewRule`)        ``fit-lvo`` (with probabilities)
lvo_thresholds.json    occlusion / LVO rule (:class:`LVOThresholds`)       ``fit-lvo``
roi_threshold.json     fine-stage ROI threshold (:class:`ROIThreshold`)    ``fit-roi``
=====================  ================================================  ==================================

``lvo_fit.json`` (:data:`FIT_RECORD_FILE`) records the ``fit-lvo`` run; nothing reads it back. A missing file means
that rule's defaults, with source "default"; a file that does not parse raises
:class:`~nnunet_thrombus.calibration.artifact.CalibrationFileError` naming it and the command that rewrites it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nnunet_thrombus.calibration.artifact import CalibrationFileError
from nnunet_thrombus.calibration.lvo import LVOThresholds
from nnunet_thrombus.calibration.postprocessing import Postprocessing
from nnunet_thrombus.calibration.review import ReviewRule
from nnunet_thrombus.calibration.roi import ROIThreshold

#: {artifact name: its class}; the file name is the class's ``FILE``
ARTIFACTS = {"postprocessing": Postprocessing, "review": ReviewRule, "lvo": LVOThresholds, "roi": ROIThreshold}
#: {artifact name: file name in the fine-stage folder}
FILES = {name: cls.FILE for name, cls in ARTIFACTS.items()}
#: the command that writes each file (named in errors)
WRITTEN_BY = {"postprocessing": "fit-lvo", "review": "fit-lvo", "lvo": "fit-lvo", "roi": "fit-roi"}
#: record of the ``fit-lvo`` run, beside the rules
FIT_RECORD_FILE = "lvo_fit.json"
DEFAULT = "default"


@dataclass(frozen=True)
class ModelCalibration:
    """The fitted rules of a model and where each came from (``<folder>/<file>`` or "default")."""

    postprocessing: Postprocessing = field(default_factory=Postprocessing)
    review: ReviewRule = field(default_factory=ReviewRule)
    lvo: LVOThresholds = field(default_factory=LVOThresholds)
    roi: ROIThreshold = field(default_factory=ROIThreshold)
    sources: dict = field(default_factory=lambda: dict.fromkeys(ARTIFACTS, DEFAULT))

    @property
    def roi_fitted(self) -> bool:
        """True when the ROI threshold came from the model's ``roi_threshold.json``."""
        return self.sources.get("roi", DEFAULT) != DEFAULT

    def describe(self) -> dict:
        """{name: source} for reports."""
        return dict(self.sources)


def load_artifact(name: str, folders):
    """(rule, source) of artifact ``name`` from the first of ``folders`` that holds its file, else its defaults."""
    cls = ARTIFACTS[name]
    for folder in folders:
        path = Path(folder) / cls.FILE
        if path.is_file():
            try:
                return cls.load(path), f"{Path(folder).name}/{cls.FILE}"
            except CalibrationFileError as exc:
                raise CalibrationFileError(f"{exc}; run 'nnunet_thrombus {WRITTEN_BY[name]}' again or delete the "
                                           f"file") from exc
    return cls(), DEFAULT


def load_model_calibration(fine_dir, root=None) -> ModelCalibration:
    """Every rule from ``fine_dir``; the LVO thresholds may also sit in ``root`` (the model folder above the stage
    folders, where earlier versions put them)."""
    rules, sources = {}, {}
    for name in ARTIFACTS:
        folders = [fine_dir] + ([root] if name == "lvo" and root is not None else [])
        rules[name], sources[name] = load_artifact(name, folders)
    return ModelCalibration(**rules, sources=sources)
