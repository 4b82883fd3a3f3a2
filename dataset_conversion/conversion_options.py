"""The converter's options, one frozen value: what ``nnunet_thrombus convert`` (and
``python -m dataset_conversion.convert_trial``) builds from its flags and ``convert_trial_dataset`` takes.

Imports only the standard library, so the command line stays instant.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConversionOptions:
    """How to convert a trial-style folder (or a manifest) to an nnU-Net raw dataset.

    dataset_id / dataset_name: the dataset folder ``Dataset{id:03d}_{name}`` (id in 1..999).
    masks_on: grid the masks were drawn on ("cta" or "ncct"; a mask matching the other scan is accepted and noted).
    cta_phase: 1-based CTA phase in acquisition order (None: phase 2 when several exist, else the only one).
    test_fraction / test_cases: held-out test set (imagesTs/labelsTs), stratified by site with ``seed``;
    ``test_cases`` (patient names or case ids) overrides the fraction.
    n_jobs: parallel processes. qc_png: checkerboard PNGs in ``qc_png/``. allow_thick_slices: accept slices
    thicker than 2.5 mm (resampled to 1 mm and flagged). manifest: CSV of cases instead of discovery.
    overwrite: delete the dataset folder first instead of resuming. quiet: progress lines at DEBUG level.
    ncct_series / cta_series: SeriesNumber or SeriesInstanceUID to read when a DICOM folder's choice is ambiguous
    (every case; a manifest's ``ncct_series`` / ``cta_series`` columns choose per case).
    anonymize / deid_key: de-identified tables for sharing (``convert_trial`` module doc); deid_key: key file
    (created when missing; default ``deid_key.txt`` in the dataset folder).
    Bad values raise ``ValueError`` naming the value.
    """

    dataset_id: int = 501
    dataset_name: str = "Thrombus"
    masks_on: str = "cta"
    cta_phase: int | None = None
    test_fraction: float = 0.0
    test_cases: tuple[str, ...] | None = None
    n_jobs: int = 1
    qc_png: bool = False
    allow_thick_slices: bool = False
    manifest: str | None = None
    overwrite: bool = False
    seed: int = 12345
    quiet: bool = False
    ncct_series: str | None = None
    cta_series: str | None = None
    anonymize: bool = False
    deid_key: str | None = None

    def __post_init__(self) -> None:
        if self.masks_on not in ("cta", "ncct"):
            raise ValueError(f"masks_on must be 'cta' or 'ncct', got {self.masks_on!r}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        if not 1 <= int(self.dataset_id) <= 999:
            raise ValueError(f"dataset_id must be in 1..999, got {self.dataset_id}")
        if self.n_jobs < 1:
            raise ValueError(f"n_jobs must be >= 1, got {self.n_jobs}")
        if self.test_cases is not None:  # a list from the command line: kept as a tuple, the value is frozen
            object.__setattr__(self, "test_cases", tuple(self.test_cases))

    @property
    def dataset_folder_name(self) -> str:
        """``Dataset{id:03d}_{name}``, the folder under nnUNet_raw."""
        return f"Dataset{int(self.dataset_id):03d}_{self.dataset_name}"

    def case_options(self) -> dict:
        """The options that shape one case's outputs, as recorded in its state file: a re-run redoes a case
        whose recorded options differ. ``anonymize`` is recorded only when set, so datasets converted before the
        switch existed still resume."""
        options = {"masks_on": self.masks_on, "cta_phase": self.cta_phase,
                   "allow_thick_slices": self.allow_thick_slices, "qc_png": self.qc_png,
                   "ncct_series": self.ncct_series, "cta_series": self.cta_series}
        if self.anonymize:
            options["anonymize"] = True
        return options
