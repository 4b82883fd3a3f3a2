"""apply-plans: the paper's numbers land in the plans, and nnU-Net's PlansManager + our trainer build from them."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from nnunet_thrombus.training.thrombus_plans import VESSEL_WINDOW, build_thrombus_plans

BASE = {
    "dataset_name": "Dataset501_SynthThrombus", "plans_name": "nnUNetPlans",
    "original_median_spacing_after_transp": [1.5, 1.5, 1.5], "original_median_shape_after_transp": [32, 48, 40],
    "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
    "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
    "foreground_intensity_properties_per_channel": {
        "0": {"max": 179.0, "mean": 101.9, "median": 101.0, "min": 45.0, "percentile_00_5": 45.0,
              "percentile_99_5": 168.0, "std": 37.4},
        "1": {"max": 77.0, "mean": 42.7, "median": 42.0, "min": 26.0, "percentile_00_5": 26.0,
              "percentile_99_5": 77.0, "std": 8.2}},
    "configurations": {"3d_fullres": {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": [32, 48, 40], "median_image_size_in_voxels": [32.0, 48.0, 40.0], "spacing": [1.5, 1.5, 1.5],
        "normalization_schemes": ["CTNormalization", "CTNormalization"], "use_mask_for_norm": [False, False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {"n_stages": 4, "features_per_stage": [32, 64, 128, 256],
                            "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * 4,
                            "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], "n_conv_per_stage": [2] * 4,
                            "n_conv_per_stage_decoder": [2] * 3, "conv_bias": True,
                            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                            "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                            "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                            "nonlin_kwargs": {"inplace": True}},
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
        "batch_dice": False}},
}


def test_paper_preset_carries_the_papers_numbers():
    plans = build_thrombus_plans(copy.deepcopy(BASE), preset="paper")
    fine, coarse = plans["configurations"]["3d_fullres"], plans["configurations"]["3d_lowres"]
    assert fine["spacing"] == [0.625, 0.488, 0.488]
    assert fine["batch_dice"] is True and coarse["batch_dice"] is True
    np.testing.assert_allclose(coarse["spacing"], [1.08, 0.844, 0.844], rtol=1e-9)
    kw = fine["architecture"]["arch_kwargs"]
    assert kw["features_per_stage"] == [32, 64, 128, 256, 320]
    assert kw["kernel_sizes"] == [[3, 3, 3]] * 5
    assert kw["norm_op"].endswith("BatchNorm3d") and kw["nonlin"].endswith("LeakyReLU")
    assert fine["batch_size"] == 2
    # the tiny base image at paper spacing is 77x148x123 voxels: the 96x160x160 patch is kept where it fits
    # and shrunk to the image (rounded up to the network's divisibility of 16) where it does not
    assert fine["patch_size"] == [80, 160, 128]
    casc = plans["configurations"]["3d_cascade_fullres"]
    assert casc["previous_stage"] == "3d_lowres" and casc["inherits_from"] == "3d_fullres"
    assert plans["plans_name"] == "ThrombusPlans"


def test_paper_patch_on_a_paper_size_image():
    base = copy.deepcopy(BASE)
    base["original_median_spacing_after_transp"] = [0.625, 0.488, 0.488]
    base["original_median_shape_after_transp"] = [257, 456, 436]
    plans = build_thrombus_plans(base, preset="paper")
    assert plans["configurations"]["3d_fullres"]["patch_size"] == [96, 160, 160]
    assert plans["configurations"]["3d_lowres"]["patch_size"] == [96, 160, 160]


def test_vessel_window_replaces_the_thrombus_percentiles():
    plans = build_thrombus_plans(copy.deepcopy(BASE), preset="auto", ct_window="vessel")
    props = plans["foreground_intensity_properties_per_channel"]
    for ch, (lo, hi) in VESSEL_WINDOW.items():
        assert (props[ch]["percentile_00_5"], props[ch]["percentile_99_5"]) == (lo, hi)
    assert BASE["foreground_intensity_properties_per_channel"]["0"]["percentile_99_5"] == 168.0


@pytest.mark.parametrize("kwargs", [{"preset": "huge"}, {"ct_window": "bone"}])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        build_thrombus_plans(copy.deepcopy(BASE), **kwargs)


def test_trainer_builds_both_stages_from_paper_plans():
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_thrombus.training.trainer import ThrombusCascadeTrainer

    pm = PlansManager(build_thrombus_plans(copy.deepcopy(BASE), preset="paper"))
    coarse = ThrombusCascadeTrainer.build_network_architecture(pm, pm.get_configuration("3d_lowres"), 2, 2, True)
    fine = ThrombusCascadeTrainer.build_network_architecture(pm, pm.get_configuration("3d_cascade_fullres"), 3, 2,
                                                             True)
    assert type(coarse).__name__ == "ThrombusCoarseUNet"
    assert type(fine).__name__ == "ThrombusCascadeNet"
    assert not any(p.requires_grad for p in fine.coarse_branch.parameters())
    n_coarse = sum(p.numel() for p in coarse.parameters())
    n_branch = sum(p.numel() for p in fine.coarse_branch.parameters())
    assert n_branch == n_coarse


def test_coarse_spacing_override_sets_the_lowres_spacing_and_refuses_finer_than_fine():
    plans = build_thrombus_plans(copy.deepcopy(BASE), preset="auto", coarse_spacing=(2.0, 1.5, 3.0))
    cfg = plans["configurations"]
    assert cfg["3d_lowres"]["spacing"] == pytest.approx([2.0, 1.5, 3.0])
    assert cfg["3d_fullres"]["spacing"] == [1.5, 1.5, 1.5]
    assert plans["thrombus_plans"]["coarse_to_fine_spacing_ratio"] == pytest.approx([4 / 3, 1.0, 2.0])
    assert cfg["3d_lowres"]["median_image_size_in_voxels"] == pytest.approx([24.0, 48.0, 20.0])
    ratio = build_thrombus_plans(copy.deepcopy(BASE), preset="auto", coarse_spacing="ratio")
    assert ratio["configurations"]["3d_lowres"]["spacing"] == pytest.approx(
        [1.5 * 1.08 / 0.625, 1.5 * 0.844 / 0.488, 1.5 * 0.844 / 0.488])
    with pytest.raises(ValueError, match="none finer than the fine spacing"):
        build_thrombus_plans(copy.deepcopy(BASE), preset="auto", coarse_spacing=(1.0, 1.5, 1.5))


def test_default_coarse_spacing_is_the_papers_own_capped_at_the_fine_spacing():
    """The default is "paper". 1.5 mm fine data: every paper axis is finer, so stage 1 runs at the fine spacing;
    1.0 x 0.6 x 0.6 mm data: z 1.08, in-plane 0.844 (the paper's); 1.0 x 0.9 x 0.9 mm: 1.08 x 0.9 x 0.9."""
    plans = build_thrombus_plans(copy.deepcopy(BASE), preset="auto")
    assert plans["configurations"]["3d_lowres"]["spacing"] == pytest.approx([1.5, 1.5, 1.5])
    for fine, coarse in (([1.0, 0.6, 0.6], [1.08, 0.844, 0.844]), ([1.0, 0.9, 0.9], [1.08, 0.9, 0.9])):
        base = copy.deepcopy(BASE)
        base["configurations"]["3d_fullres"]["spacing"] = fine
        plans = build_thrombus_plans(base, preset="auto")
        assert plans["configurations"]["3d_lowres"]["spacing"] == pytest.approx(coarse)
        assert plans["thrombus_plans"]["coarse_to_fine_spacing_ratio"] == pytest.approx(
            [c / f for c, f in zip(coarse, fine)])
    with pytest.raises(ValueError, match="'paper' or 'ratio'"):
        build_thrombus_plans(copy.deepcopy(BASE), preset="auto", coarse_spacing="half")


@pytest.mark.parametrize("preset", ["auto", "cpu", "paper"])
def test_stage_one_normalises_with_statistics_independent_of_the_field_of_view(preset):
    """Stage 1 trains on patches but runs over the whole head: its norm is BatchNorm (fixed statistics in eval
    mode), while the fine stage keeps nnU-Net's instance norm where nnU-Net chose it."""
    plans = build_thrombus_plans(copy.deepcopy(BASE), preset=preset)
    cfg = plans["configurations"]
    assert cfg["3d_lowres"]["architecture"]["arch_kwargs"]["norm_op"].endswith("BatchNorm3d")
    fine_norm = cfg["3d_fullres"]["architecture"]["arch_kwargs"]["norm_op"]
    assert fine_norm.endswith("BatchNorm3d" if preset == "paper" else "InstanceNorm3d")


def test_batchnorm_stage_one_gives_a_voxel_the_same_logit_in_a_crop_and_in_the_whole_case():
    """Why BatchNorm: in eval mode a voxel far from the crop border gets (nearly) the same coarse logits whether
    the network sees a crop or the whole case; with instance norm the crop's own statistics change them. What is
    left with BatchNorm comes from CBAM's channel attention and the fusion weights, which pool over the whole
    input by design (measured here: 7e-4 against 0.43 with instance norm; exactly 0 without them)."""
    import torch

    from nnunet_thrombus.networks.coarse_net import ThrombusCoarseUNet

    common = dict(input_channels=2, n_stages=3, features_per_stage=[4, 8, 16], conv_op=torch.nn.Conv3d,
                  kernel_sizes=3, strides=[1, 2, 2], n_conv_per_stage=1, num_classes=2,
                  n_conv_per_stage_decoder=1, conv_bias=True, norm_op_kwargs={"eps": 1e-5, "affine": True},
                  nonlin=torch.nn.LeakyReLU, deep_supervision=False)
    torch.manual_seed(0)
    case = torch.randn(1, 2, 32, 32, 32)
    case[:, :, :16] += 3.0  # a bright half: the crop's statistics differ from the whole case's

    def crop_vs_whole(norm, **switches) -> float:
        torch.manual_seed(1)
        net = ThrombusCoarseUNet(norm_op=norm, **switches, **common).eval()
        with torch.no_grad():
            whole = net(case)[:, :, 8:16, 8:24, 8:24]
            crop = net(case[:, :, 0:24, 0:32, 0:32])[:, :, 8:16, 8:24, 8:24]
        return float((whole - crop).abs().max())

    batch = crop_vs_whole(torch.nn.BatchNorm3d)
    instance = crop_vs_whole(torch.nn.InstanceNorm3d)
    assert batch < 5e-3 and instance > 0.1 and instance > 100 * batch
    assert crop_vs_whole(torch.nn.BatchNorm3d, use_cbam=False, use_pyramid_fusion=False) == 0.0
    assert crop_vs_whole(torch.nn.InstanceNorm3d, use_cbam=False, use_pyramid_fusion=False) > 0.1
