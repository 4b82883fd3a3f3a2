"""The plans presets are package data (``nnunet_thrombus/presets``); ``plans/`` at the top keeps equal copies."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnunet_thrombus.presets import PRESET_FILES, load_preset

ROOT = Path(__file__).resolve().parents[1]


def test_presets_load_from_the_package():
    paper = load_preset("paper")
    assert paper["patch_size"] == [96, 160, 160] and paper["coarse_spacing_mm"] == [1.08, 0.844, 0.844]
    assert load_preset("cpu")["features_per_stage"] == [16, 32, 64, 128]


def test_top_level_plans_are_copies_of_the_packaged_presets():
    copies = sorted(p.name for p in (ROOT / "plans").glob("*.json"))
    assert copies == sorted(PRESET_FILES.values())
    for name, file in PRESET_FILES.items():
        assert json.loads((ROOT / "plans" / file).read_text()) == load_preset(name), \
            f"plans/{file} differs from nnunet_thrombus/presets/{file}: edit the packaged one and copy it over"


def test_unknown_preset_names_the_ones_that_exist():
    with pytest.raises(ValueError, match="presets with one: cpu, paper"):
        load_preset("auto")
