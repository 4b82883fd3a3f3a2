"""The options of a prediction run, grouped by concern (frozen dataclasses, nothing heavy imported).

- :class:`ModelOptions`: which trained cascade and how it runs (read once, when
  :meth:`~nnunet_thrombus.inference.pipeline.ThrombusCasePredictor.from_model` loads it);
- :class:`OutputOptions`: which files each case gets beyond mask, report and overlay, and de-identification;
- :class:`BatchOptions`: how a batch of cases is read, split and resumed.

Every default is the ``nnunet_thrombus predict`` default; ``commands/predict.py`` builds these from its flags.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotation only
    from nnunet_thrombus.model_folder import CascadeModel


@dataclass(frozen=True)
class ModelOptions:
    """How the cascade is found and run.

    model: a folder holding the two stage folders (a copied results folder) or a resolved ``CascadeModel``;
    dataset: id or name under ``nnUNet_results`` (instead of ``model``); trainer / plans: what it was trained with
    (None: ``model_folder``'s defaults); folds: folds to ensemble (None: every trained fold); device: torch device;
    use_tta: mirroring test-time augmentation; roi_restrict: fine stage only around the coarse candidates;
    roi_threshold: coarse probability above which the fine stage looks (None: the model's ``roi_threshold.json``,
    else the default).
    """

    model: str | Path | CascadeModel | None = None
    dataset: str | int | None = None
    trainer: str | None = None
    plans: str | None = None
    folds: tuple | list | None = None
    device: str = "cpu"
    use_tta: bool = True
    roi_restrict: bool = True
    roi_threshold: float | None = None


@dataclass(frozen=True)
class OutputOptions:
    """What each case writes beyond ``thrombus.nii.gz``, ``report.json`` and ``overlay.png``.

    save_probabilities: ``probabilities.npz`` (float16); dicom_seg: ``thrombus_seg.dcm`` for DICOM input;
    dicom_sr: also ``thrombus_sr.dcm`` (the measurements) and the SEG it references; anonymize: de-identify every
    output (``pipeline`` module doc); anonymize_seg: the DICOM SEG only, the same way; deid_key: path of the key
    file for either (created when missing; None: ``OUT/deid_key.txt``); keep_phi: identifying header values in
    ``report.json`` under ``patient`` (with ``anonymize``: ValueError).
    """

    save_probabilities: bool = False
    dicom_seg: bool = False
    dicom_sr: bool = False
    anonymize: bool = False
    anonymize_seg: bool = False
    deid_key: str | Path | None = None
    keep_phi: bool = False

    def __post_init__(self):
        if self.anonymize and self.keep_phi:
            raise ValueError("anonymize and keep_phi contradict each other; give one")


@dataclass(frozen=True)
class BatchOptions:
    """How the cases are read and the batch is run.

    allow_thick_slices: accept slices > 2.5 mm (resampled to 1 mm, flagged); num_parts / part_id: predict part
    ``part_id`` of the cases split into ``num_parts`` (as nnU-Net's ``--num_parts``); overwrite: redo finished
    cases; quiet: per-case lines at DEBUG instead of INFO; cache_dir: registration + skull-stripping cache (None:
    computed every time); ncct_series / cta_series: SeriesNumber or SeriesInstanceUID to read when a DICOM folder
    holds several equally good series (single-case input only).
    """

    allow_thick_slices: bool = False
    num_parts: int = 1
    part_id: int = 0
    overwrite: bool = False
    quiet: bool = False
    cache_dir: str | Path | None = None
    ncct_series: str | None = None
    cta_series: str | None = None
