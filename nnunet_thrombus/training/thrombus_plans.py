"""Write the cascade (``3d_lowres`` + ``3d_cascade_fullres``) into a planned nnU-Net dataset, for any image size.

nnU-Net's planner only creates a cascade when the images are much larger than the full-resolution patch, so small
data (our synthetic cohort) gets none. :func:`build_thrombus_plans` starts from nnU-Net's own plans (fingerprint,
``3d_fullres``) and writes a new plans identifier (default ``ThrombusPlans``) with:

- ``3d_fullres``: single-stage ``ThrombusCoarseUNet`` (CBAM + pyramid fusion) at full resolution;
- ``3d_lowres``: the coarse stage at the paper's own spacing, 1.08 x 0.844 x 0.844 mm (z, y, x), each axis capped at
  the fine spacing (``coarse_spacing="paper"``, the default). ``coarse_spacing="ratio"`` puts it at the fine spacing
  times the paper's ratio (1.08/0.625, 0.844/0.488, 0.844/0.488) instead: the same on the paper's 0.625 x 0.488 mm
  data, but 1.73 x 1.56 x 1.56 mm on 1.0 x 0.9 x 0.9 mm data, where stage 1 then misses most M2/ACA clots
  (``docs/results/trust_eval_cpu.md``);
- ``3d_cascade_fullres``: inherits ``3d_fullres``, ``previous_stage`` ``3d_lowres``, ``ThrombusCascadeNet``.

Written into nnU-Net's own plans (``plans_name`` equal to the source, e.g. ``-p nnUNetPlans``, so the card's plain
``nnUNetv2_train ID 3d_cascade_fullres 0 -tr ThrombusCascadeTrainer`` works without ``-p``), every configuration
nnU-Net made stays as nnU-Net made it (vanilla ``3d_fullres`` stays vanilla: PlainConvUNet, its spacing, patch and
per-sample Dice) and only ``3d_lowres`` and ``3d_cascade_fullres`` are (re)defined, the fine stage as a full
configuration of its own. It shares ``3d_fullres``'s preprocessed data when its preprocessing is the same (``auto``,
``cpu``), else gets its own (``paper``). The vessel window changes plan-wide intensity properties that vanilla
``3d_fullres`` uses too, so it is refused in place.

Presets: ``paper`` (the paper's spacing, patch, features, BatchNorm; ``presets/paper_plans.json``), ``auto`` (nnU-Net's
own 3d_fullres choices, only the cascade added), ``cpu`` (``auto`` with ``presets/cpu_plans.json``'s smaller features
and patch), both package data read by :func:`nnunet_thrombus.presets.load_preset`. In every preset stage 1
(``3d_lowres``) uses BatchNorm: it trains on patches but runs over the whole head, and instance norm would make its
output depend on the field of view. ``ct_window='vessel'`` replaces nnU-Net's CT clip range (0.5-99.5 percentile of
thrombus voxels, which clips contrast-filled arteries on CTA to about 100 HU) by a fixed window per channel
(:data:`VESSEL_WINDOW`).
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

from nnunet_thrombus.atomic_io import copy_file, write_json
from nnunet_thrombus.model_folder import COARSE, DEFAULT_PLANS, FINE
from nnunet_thrombus.presets import load_preset

PAPER_RATIO = (1.08 / 0.625, 0.844 / 0.488, 0.844 / 0.488)
COARSE_CLASS = "nnunet_thrombus.networks.coarse_net.ThrombusCoarseUNet"
CASCADE_CLASS = "nnunet_thrombus.networks.cascade_net.ThrombusCascadeNet"
#: channel -> (lower HU, upper HU): CTA keeps contrast-filled vessels (250-500 HU) and the clot (40-70 HU) apart;
#: NCCT keeps hyperdense clot, calcification onset (130 HU) and brain.
VESSEL_WINDOW = {"0": (-20.0, 600.0), "1": (-20.0, 150.0)}
PRESETS = ("auto", "cpu", "paper")
#: stage 1's normalisation in every preset: statistics that do not depend on the field of view (see
#: :func:`build_thrombus_plans`)
COARSE_NORM_OP = "torch.nn.modules.batchnorm.BatchNorm3d"

#: configuration keys that decide the preprocessed data (two configurations equal in these can share it)
PREPROCESSING_KEYS = ("spacing", "normalization_schemes", "use_mask_for_norm", "preprocessor_name", "resampling_fn_data",
                      "resampling_fn_data_kwargs", "resampling_fn_seg", "resampling_fn_seg_kwargs")


def _divisibility(strides) -> list[int]:
    return [int(math.prod(s[i] for s in strides)) for i in range(len(strides[0]))]


def _fit_patch(patch, image_shape, strides) -> list[int]:
    """``patch`` shrunk (never grown) to the image size rounded up to the network's divisibility."""
    div = _divisibility(strides)
    return [max(d, min(int(p), int(math.ceil(s / d) * d))) for p, s, d in zip(patch, image_shape, div)]


def _set_architecture(cfg: dict, class_name: str, features=None, strides=None, kernel=None, n_conv=None,
                      norm_op=None, norm_kwargs=None) -> None:
    arch = cfg["architecture"]
    kw = arch["arch_kwargs"]
    arch["network_class_name"] = class_name
    if strides is not None:
        kw["strides"] = [list(s) for s in strides]
    if features is not None:
        n = len(features)
        kw["features_per_stage"] = list(features)
        kw["strides"] = (kw["strides"] + [[2] * len(kw["strides"][0])] * n)[:n]
    n = len(kw["features_per_stage"])
    kw["n_stages"] = n
    if kernel is not None:
        kw["kernel_sizes"] = [list(kernel)] * n
    else:
        kw["kernel_sizes"] = (kw["kernel_sizes"] + [kw["kernel_sizes"][-1]] * n)[:n]
    per_stage = n_conv if n_conv is not None else (kw["n_conv_per_stage"][0] if kw["n_conv_per_stage"] else 2)
    kw["n_conv_per_stage"] = [per_stage] * n
    kw["n_conv_per_stage_decoder"] = [per_stage] * (n - 1)
    if norm_op is not None:
        kw["norm_op"] = norm_op
        kw["norm_op_kwargs"] = dict(norm_kwargs or {"eps": 1e-5, "affine": True})
    kw.setdefault("use_cbam", True)
    kw.setdefault("use_pyramid_fusion", True)
    arch.setdefault("_kw_requires_import", ["conv_op", "norm_op", "dropout_op", "nonlin"])


def build_thrombus_plans(base_plans: dict, preset: str = "auto", plans_name: str = DEFAULT_PLANS,
                         ct_window: str = "foreground", patch_size=None, features=None,
                         batch_size: int | None = None, coarse_spacing="paper") -> dict:
    """New plans dict (see module docstring). ``base_plans``: nnU-Net's plans with a ``3d_fullres`` configuration.
    ``coarse_spacing``: ``"paper"`` (default): the paper's own 1.08 x 0.844 x 0.844 mm, each axis capped at the fine
    spacing (on 1.0 x 0.9 x 0.9 mm data, 1.08 x 0.9 x 0.9 mm); ``"ratio"``: the fine spacing times the paper's
    coarse/fine ratio (1.73 x 1.56 x 1.56 mm on that data); or the spacing in mm (z, y, x), no axis finer than the
    fine spacing."""
    in_place = _check_request(base_plans, preset, plans_name, ct_window)
    plans = copy.deepcopy(base_plans)
    plans["plans_name"] = plans_name
    fine, preset_ratio = _fine_configuration(plans, preset, plans_name,
                                             {"patch_size": patch_size, "features": features,
                                              "batch_size": batch_size})
    ratio = _coarse_ratio(coarse_spacing, fine["spacing"], preset_ratio)
    coarse = _coarse_configuration(fine, plans_name, ratio)
    cascade_arch = copy.deepcopy(fine["architecture"])
    cascade_arch["network_class_name"] = CASCADE_CLASS
    cascade_arch["arch_kwargs"]["use_coarse_features"] = True
    cascade_arch["arch_kwargs"]["freeze_coarse"] = True
    if in_place:
        # nnU-Net's configurations untouched; the fine stage is a full configuration of its own
        vanilla = base_plans["configurations"]
        cascade = dict(copy.deepcopy(fine), architecture=cascade_arch, previous_stage=COARSE)
        base_fullres = vanilla["3d_fullres"]
        same = all(cascade.get(k) == base_fullres.get(k) for k in PREPROCESSING_KEYS)
        cascade["data_identifier"] = base_fullres["data_identifier"] if same else f"{plans_name}_3d_cascade_fullres"
        configurations = {k: copy.deepcopy(v) for k, v in vanilla.items() if k not in (COARSE, FINE)}
        configurations.update({COARSE: coarse, FINE: cascade})
        plans["configurations"] = configurations
    else:
        plans["configurations"] = {"3d_fullres": fine, COARSE: coarse,
                                   FINE: {"inherits_from": "3d_fullres", "previous_stage": COARSE,
                                          "architecture": cascade_arch}}
    if ct_window == "vessel":
        props = plans["foreground_intensity_properties_per_channel"]
        for ch, (lo, hi) in VESSEL_WINDOW.items():
            if ch in props:
                props[ch].update({"percentile_00_5": lo, "percentile_99_5": hi, "mean": (lo + hi) / 2,
                                  "std": (hi - lo) / 2})
    plans["thrombus_plans"] = {"preset": preset, "ct_window": ct_window, "coarse_to_fine_spacing_ratio": list(ratio),
                               "coarse_norm_op": COARSE_NORM_OP,
                               "source_plans": base_plans.get("plans_name"), "in_place": in_place}
    return plans


def _check_request(base_plans: dict, preset: str, plans_name: str, ct_window: str) -> bool:
    """Refuse an unknown preset or window, source plans without 3d_fullres, and a vessel window written into
    nnU-Net's own plans. Returns whether the plans are written in place (``plans_name`` is the source's)."""
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r}; choose one of {PRESETS}")
    if ct_window not in ("foreground", "vessel"):
        raise ValueError(f"ct_window={ct_window!r}; choose 'foreground' (nnU-Net) or 'vessel'")
    if "3d_fullres" not in base_plans.get("configurations", {}):
        raise ValueError("the source plans have no 3d_fullres configuration; run nnUNetv2_plan_and_preprocess "
                         "(or nnUNetv2_plan_experiment) with -c 3d_fullres first")
    in_place = plans_name == base_plans.get("plans_name")
    if in_place and ct_window != "foreground":
        raise ValueError(f"--ct-window {ct_window} changes the intensity properties of the whole plans, which "
                         f"nnU-Net's own 3d_fullres uses too; write new plans instead (-p ThrombusPlans)")
    return in_place


def _fine_configuration(plans: dict, preset: str, plans_name: str, overrides: dict) -> tuple[dict, tuple]:
    """The fine configuration (our network at nnU-Net's 3d_fullres spacing, or the paper preset's) from
    ``plans``' 3d_fullres, with the preset's and then the caller's ``overrides`` (patch_size, features, batch_size;
    None keeps). Returns it and the coarse/fine spacing ratio the preset implies."""
    base = plans["configurations"]["3d_fullres"]
    for key in ("inherits_from", "previous_stage", "next_stage"):
        base.pop(key, None)
    fine = copy.deepcopy(base)
    fine["data_identifier"] = f"{plans_name}_3d_fullres"
    ratio, arch_args = PAPER_RATIO, {}
    if preset == "paper":
        p = load_preset("paper")
        fine["spacing"] = list(p["fine_spacing_mm"])
        ratio = tuple(c / f for c, f in zip(p["coarse_spacing_mm"], p["fine_spacing_mm"]))
        fine["patch_size"] = list(p["patch_size"])
        fine["batch_size"] = int(p["batch_size"])
        arch_args = dict(features=p["features_per_stage"], strides=p["strides"], kernel=p["kernel_size"],
                         n_conv=p["n_conv_per_stage"], norm_op=p["norm_op"], norm_kwargs=p["norm_op_kwargs"])
        fine["architecture"]["arch_kwargs"]["nonlin"] = p["nonlin"]
        fine["architecture"]["arch_kwargs"]["nonlin_kwargs"] = p["nonlin_kwargs"]
        scale = [o / n for o, n in zip(plans["original_median_spacing_after_transp"], fine["spacing"])]
        fine["median_image_size_in_voxels"] = [s * k for s, k in
                                               zip(plans["original_median_shape_after_transp"], scale)]
    elif preset == "cpu":
        p = load_preset("cpu")
        fine["batch_size"] = int(p["batch_size"])
        arch_args = dict(features=p["features_per_stage"])
        fine["patch_size"] = list(p["patch_size"])
    if overrides.get("features") is not None:
        arch_args["features"] = list(overrides["features"])
    if overrides.get("patch_size") is not None:
        fine["patch_size"] = [int(v) for v in overrides["patch_size"]]
    if overrides.get("batch_size") is not None:
        fine["batch_size"] = int(overrides["batch_size"])
    # Dice pooled over the batch (nnU-Net plans 3d_fullres with per-sample Dice). With batch 2 and nnU-Net's
    # foreground oversampling one patch of each batch holds thrombus and the other is random, so pooling makes
    # false positives in the random patch cost Dice; per-sample Dice leaves them to cross-entropy alone
    # (measured on the demo cohort: 12-20 false components per held-out case, docs/results/demo.md).
    fine["batch_dice"] = True
    _set_architecture(fine, COARSE_CLASS, **arch_args)
    strides = fine["architecture"]["arch_kwargs"]["strides"]
    fine["patch_size"] = _fit_patch(fine["patch_size"], fine["median_image_size_in_voxels"], strides)
    return fine, ratio


def _coarse_ratio(coarse_spacing, fine_spacing, preset_ratio: tuple) -> tuple:
    """Coarse/fine spacing ratio per axis (z, y, x) for ``coarse_spacing`` ("paper", "ratio"/None: the preset's
    ratio, or 3 numbers in mm, none finer than ``fine_spacing``)."""
    if coarse_spacing is None or coarse_spacing == "ratio":
        return preset_ratio
    if isinstance(coarse_spacing, str):
        if coarse_spacing != "paper":
            raise ValueError(f"coarse spacing must be 3 numbers (mm), 'paper' or 'ratio', got {coarse_spacing!r}")
        paper = load_preset("paper")["coarse_spacing_mm"]  # the paper's own stage-1 spacing (z, y, x) mm
        coarse_spacing = [max(c, f) for c, f in zip(paper, fine_spacing)]
    coarse_spacing = [float(v) for v in coarse_spacing]
    if len(coarse_spacing) != 3 or any(c < f - 1e-6 for c, f in zip(coarse_spacing, fine_spacing)):
        raise ValueError(f"coarse spacing {coarse_spacing} mm must have 3 values, none finer than the fine "
                         f"spacing {[round(f, 3) for f in fine_spacing]} mm")
    return tuple(c / f for c, f in zip(coarse_spacing, fine_spacing))


def _coarse_configuration(fine: dict, plans_name: str, ratio: tuple) -> dict:
    """Stage 1: the fine configuration at ``ratio`` x its spacing, with BatchNorm (see below)."""
    coarse = copy.deepcopy(fine)
    coarse["data_identifier"] = f"{plans_name}_3d_lowres"
    # stage 1 trains on patches but runs over the whole head (predict and the stage-1 export): instance norm would
    # normalise each feature map over whatever field of view it is given, so the whole-head pass would not be the
    # network that was trained. BatchNorm in eval mode applies fixed statistics (the paper's choice too).
    coarse["architecture"]["arch_kwargs"]["norm_op"] = COARSE_NORM_OP
    coarse["architecture"]["arch_kwargs"]["norm_op_kwargs"] = {"eps": 1e-5, "affine": True}
    coarse["spacing"] = [s * r for s, r in zip(fine["spacing"], ratio)]
    coarse["median_image_size_in_voxels"] = [s / r for s, r in zip(fine["median_image_size_in_voxels"], ratio)]
    strides = fine["architecture"]["arch_kwargs"]["strides"]
    coarse["patch_size"] = _fit_patch(fine["patch_size"], coarse["median_image_size_in_voxels"], strides)
    coarse["next_stage"] = FINE
    return coarse


def configurations_to_preprocess(plans: dict) -> list[str]:
    """The configurations whose preprocessed data training the cascade needs and ``apply-plans`` changed: new plans
    ``3d_fullres`` and ``3d_lowres``; in place ``3d_lowres``, and ``3d_cascade_fullres`` when it does not share
    ``3d_fullres``'s data (nnUNetv2_plan_and_preprocess already made that)."""
    if not plans.get("thrombus_plans", {}).get("in_place"):
        return ["3d_fullres", COARSE]
    cfg = plans["configurations"]
    shared = cfg[FINE]["data_identifier"] == cfg["3d_fullres"]["data_identifier"]
    return [COARSE] + ([] if shared else [FINE])


def apply_plans(dataset: str | int, preset: str = "auto", plans_name: str = DEFAULT_PLANS,
                source_plans: str = "nnUNetPlans", ct_window: str = "foreground", patch_size=None, features=None,
                batch_size: int | None = None, coarse_spacing="paper") -> Path:
    """Read ``<nnUNet_preprocessed>/<dataset>/<source_plans>.json``, write ``<plans_name>.json`` beside it; returns
    its path. When ``plans_name == source_plans`` the original is kept as ``<name>.orig.json``."""
    # nnunetv2.paths reads nnUNet_preprocessed when first imported: here, after the caller has set it
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    folder = Path(str(nnUNet_preprocessed)) / maybe_convert_to_dataset_name(dataset)
    src = folder / f"{source_plans}.json"
    if not src.is_file():
        raise FileNotFoundError(f"{src} does not exist: plan the dataset first, e.g. "
                                f"nnUNetv2_plan_and_preprocess -d {dataset} -c 3d_fullres")
    base = json.loads(src.read_text())
    plans = build_thrombus_plans(base, preset, plans_name, ct_window, patch_size, features, batch_size,
                                 coarse_spacing)
    dst = folder / f"{plans_name}.json"
    if dst == src:
        backup = folder / f"{source_plans}.orig.json"
        if not backup.exists():
            copy_file(src, backup)
    write_json(dst, plans)
    return dst


def preprocess_dataset_id(dataset: str | int) -> int:
    """The integer id nnU-Net's preprocess API wants, from ``501`` or ``Dataset501_Name``."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    return int(maybe_convert_to_dataset_name(dataset)[len("Dataset"):len("Dataset") + 3])
