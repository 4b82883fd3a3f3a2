"""apply-plans into nnU-Net's own plans (-p nnUNetPlans): vanilla 3d_fullres untouched, the cascade added."""
from __future__ import annotations

import copy

import pytest
from test_thrombus_plans import BASE

from nnunet_thrombus.training.thrombus_plans import build_thrombus_plans, configurations_to_preprocess


@pytest.mark.parametrize("preset,shared", [("auto", True), ("cpu", True), ("paper", False)])
def test_in_place_keeps_vanilla_and_adds_the_cascade(preset, shared):
    base = copy.deepcopy(BASE)
    base["configurations"]["2d"] = {"data_identifier": "nnUNetPlans_2d", "batch_size": 12}
    plans = build_thrombus_plans(copy.deepcopy(base), preset=preset, plans_name="nnUNetPlans")
    cfg = plans["configurations"]
    assert cfg["3d_fullres"] == base["configurations"]["3d_fullres"] and cfg["2d"] == base["configurations"]["2d"]
    assert plans["foreground_intensity_properties_per_channel"] == base["foreground_intensity_properties_per_channel"]
    casc = cfg["3d_cascade_fullres"]
    assert "inherits_from" not in casc and casc["previous_stage"] == "3d_lowres" and casc["batch_dice"] is True
    assert casc["architecture"]["network_class_name"].endswith("ThrombusCascadeNet")
    assert cfg["3d_lowres"]["next_stage"] == "3d_cascade_fullres"
    assert (casc["data_identifier"] == "nnUNetPlans_3d_fullres") == shared
    assert configurations_to_preprocess(plans) == (["3d_lowres"] if shared else ["3d_lowres", "3d_cascade_fullres"])
    # written as new plans instead, 3d_fullres is our single-stage network and both configurations are preprocessed
    new = build_thrombus_plans(copy.deepcopy(base), preset=preset, plans_name="ThrombusPlans")
    assert new["configurations"]["3d_fullres"]["architecture"]["network_class_name"].endswith("ThrombusCoarseUNet")
    assert configurations_to_preprocess(new) == ["3d_fullres", "3d_lowres"]


def test_vessel_window_refused_in_place():
    with pytest.raises(ValueError, match="nnU-Net's own 3d_fullres uses too.*-p ThrombusPlans"):
        build_thrombus_plans(copy.deepcopy(BASE), plans_name="nnUNetPlans", ct_window="vessel")


@pytest.mark.parametrize("spacing", [["1.0", "2.0"], ["paper", "1"], ["fine"]])
def test_apply_plans_cli_refuses_a_malformed_coarse_spacing(spacing, capsys):
    """Refused before any dataset is read (the dataset id does not exist)."""
    from nnunet_thrombus.cli import main

    assert main(["apply-plans", "-d", "999", "--coarse-spacing", *spacing]) == 2
    assert "'paper', 'ratio' or three numbers in mm (Z Y X)" in capsys.readouterr().err
