"""The converter's options: every convert flag lands in its ``ConversionOptions`` field, the defaults of the flags
and of the dataclass agree, bad values are refused naming them."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from dataset_conversion.conversion_options import ConversionOptions
from dataset_conversion.convert_args import add_arguments, to_options


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_map_to_fields():
    args = _parse(["-i", "IN", "-o", "OUT", "-d", "7", "-n", "Trial", "-m", "ncct", "-p", "1", "--ncct-series", "3",
                   "--cta-series", "1.2.3", "-t", "0.25", "--test-cases", "P1", "P2", "-j", "2", "--qc-png",
                   "--allow-thick-slices", "--manifest", "cases.csv", "--overwrite", "--anonymize",
                   "--deid-key", "key.txt", "-q"])
    assert dataclasses.asdict(to_options(args)) == {
        "dataset_id": 7, "dataset_name": "Trial", "masks_on": "ncct", "cta_phase": 1, "test_fraction": 0.25,
        "test_cases": ("P1", "P2"), "n_jobs": 2, "qc_png": True, "allow_thick_slices": True,
        "manifest": "cases.csv", "overwrite": True, "seed": 12345, "quiet": True, "ncct_series": "3",
        "cta_series": "1.2.3", "anonymize": True, "deid_key": "key.txt"}


def test_flag_defaults_are_the_option_defaults():
    assert to_options(_parse(["-i", "IN", "-o", "OUT"])) == ConversionOptions()
    assert ConversionOptions().dataset_folder_name == "Dataset501_Thrombus"


def test_case_options_record_anonymize_only_when_set():
    assert "anonymize" not in ConversionOptions().case_options()  # datasets converted before the switch resume
    assert ConversionOptions(anonymize=True, cta_phase=2).case_options() == {
        "masks_on": "cta", "cta_phase": 2, "allow_thick_slices": False, "qc_png": False, "ncct_series": None,
        "cta_series": None, "anonymize": True}


@pytest.mark.parametrize("kwargs,message", [
    ({"masks_on": "mri"}, "masks_on must be 'cta' or 'ncct', got 'mri'"),
    ({"test_fraction": 1.0}, r"test_fraction must be in \[0, 1\), got 1.0"),
    ({"dataset_id": 1000}, "dataset_id must be in 1..999, got 1000"),
    ({"n_jobs": 0}, "n_jobs must be >= 1, got 0"),
])
def test_bad_values_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConversionOptions(**kwargs)
