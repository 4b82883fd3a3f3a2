"""Two-stage prediction of one case: coarse stage (fold ensemble), then the fine stage with coarse features.

With the global coarse context (the default fine network, ``coarse_context="global"``) the coarse stage is ONE
forward pass per fold of the fine model's own (frozen, stage-1) coarse branch over the whole preprocessed case at
coarse spacing: it gives both the coarse prediction (candidate region and the fine stage's segmentation channel)
and the features every fine window samples. The ``3d_lowres`` model's own sliding window is used only by fine
models without a global context (the ``_patchContext`` and ``_noCoarseFeatures`` ablations).

Both stages reuse nnU-Net's predictor (preprocessing from the plans, Gaussian-weighted sliding window, mirroring
TTA). What is ours:

- the fine stage's sliding window visits only windows near the coarse candidate region (coarse thrombus
  probability above ``roi_threshold``, grown by half a fine patch; windows on nnU-Net's grid or on per-candidate
  crops, whichever are fewer: :class:`~nnunet_thrombus.inference.roi_predictor.ROIRestrictedPredictor`), with a
  whole-image fallback when the coarse stage finds nothing (so a coarse miss is not automatically a final miss);
- export resamples only the thrombus probability channel, with torch interpolation on the prediction's device,
  instead of nnU-Net's CPU resampling of every class channel.

Arrays are numpy in SimpleITK order: images ``(C, Z, Y, X)``, spacing ``(z, y, x)`` mm.
"""
from __future__ import annotations

import time
from os.path import isdir, isfile, join

import numpy as np
import torch
import torch.nn.functional as F
from nnunetv2.inference.data_iterators import PreprocessAdapterFromNpy

from nnunet_thrombus.inference.fold_ensemble import FoldSpread, ensemble_logits
from nnunet_thrombus.inference.result import CascadeResult
from nnunet_thrombus.inference.roi_predictor import ROIRestrictedPredictor
from nnunet_thrombus.model_folder import ModelError, quiet_nnunet, select_folds
from nnunet_thrombus.networks.cascade_net import unwrap_network
from nnunet_thrombus.networks.coarse_context import coarse_probability_on_fine_grid, run_coarse_passes
from nnunet_thrombus.vocabulary import DEFAULT_ROI_THRESHOLD


def _model_dir_check(path: str, what: str) -> None:
    if not isdir(path) or not isfile(join(path, "plans.json")):
        raise ModelError(f"{what} model folder {path} is missing or incomplete (no plans.json); train it "
                         f"or pass -m with an nnU-Net results folder that contains it")


def _make_predictor(model_dir: str, folds, device: torch.device, use_mirroring: bool, checkpoint: str,
                    tile_step_size: float) -> ROIRestrictedPredictor:
    use = select_folds(model_dir, folds, checkpoint)
    pred = ROIRestrictedPredictor(tile_step_size=tile_step_size, use_gaussian=True, use_mirroring=use_mirroring,
                                  perform_everything_on_device=device.type == "cuda", device=device,
                                  allow_tqdm=False)
    with quiet_nnunet():
        pred.initialize_from_trained_model_folder(model_dir, use_folds=use, checkpoint_name=checkpoint)
    pred.folds_used = use
    return pred


def foreground_probability_to_input_grid(logits: torch.Tensor, properties: dict, plans_manager) -> np.ndarray:
    """Thrombus probability (1 - background softmax) of ``logits`` (C, z, y, x) at network spacing, resampled
    (trilinear, torch, on the logits' device) to the cropped input shape and pasted into the uncropped grid."""
    return probability_to_input_grid(1.0 - torch.softmax(logits.float(), dim=0)[0], properties, plans_manager)


def probability_to_input_grid(prob: torch.Tensor, properties: dict, plans_manager) -> np.ndarray:
    """A probability map (z, y, x) on the preprocessed grid, resampled (trilinear) to the cropped input shape and
    pasted into the uncropped input grid (Z, Y, X)."""
    target = [int(s) for s in properties["shape_after_cropping_and_before_resampling"]]
    if list(prob.shape) != target:
        prob = F.interpolate(prob[None, None], size=target, mode="trilinear", align_corners=False)[0, 0]
    full = np.zeros([int(s) for s in properties["shape_before_cropping"]], dtype=np.float32)
    bbox = properties["bbox_used_for_cropping"]
    full[tuple(slice(a, b) for a, b in bbox)] = prob.clamp(0, 1).cpu().numpy()
    return full.transpose(plans_manager.transpose_backward)


class ThrombusCascadePredictor:
    """Load the coarse (``3d_lowres``) and fine (``3d_cascade_fullres``) models once, predict many cases.

    ``coarse_context`` (None: as trained) switches the fine network between ``"global"`` and ``"patch"`` features
    with the same weights, e.g. to time the former per-window branch against the whole-case pass."""

    def __init__(self, coarse_model_dir: str, fine_model_dir: str, folds=None, device: str = "cpu",
                 use_mirroring: bool = True, roi_restrict: bool = True, roi_threshold: float = DEFAULT_ROI_THRESHOLD,
                 checkpoint_name: str = "checkpoint_final.pth", tile_step_size: float = 0.5,
                 coarse_context: str | None = None):
        _model_dir_check(coarse_model_dir, "coarse (3d_lowres)")
        _model_dir_check(fine_model_dir, "fine (3d_cascade_fullres)")
        self.device = torch.device(device)
        self.coarse = _make_predictor(coarse_model_dir, folds, self.device, use_mirroring, checkpoint_name,
                                      tile_step_size)
        self.fine = _make_predictor(fine_model_dir, folds, self.device, use_mirroring, checkpoint_name,
                                    tile_step_size)
        if coarse_context is not None:  # same weights, other feature source (timing the patch branch)
            net = getattr(self.fine.network, "_orig_mod", self.fine.network)
            if getattr(net, "coarse_branch", None) is None:
                raise ValueError("coarse_context given, but the fine model has no coarse branch")
            net.coarse_context = coarse_context
        n_img = len(self.fine.dataset_json["channel_names"])
        n_coarse = len(self.coarse.dataset_json["channel_names"])
        if n_img != n_coarse:
            raise ValueError(f"coarse model expects {n_coarse} channels, fine model {n_img}: models do not match")
        self.num_channels = n_img
        self.roi_restrict = roi_restrict
        self.roi_threshold = float(roi_threshold)
        # the candidate region is grown by half a fine patch per axis
        self.fine.margin = tuple(int(np.ceil(p / 2)) for p in self.fine.configuration_manager.patch_size)
        self.folds = tuple(str(f) for f in self.fine.folds_used)
        fine_cm = self.fine.configuration_manager
        coarse_spacing = self.fine.plans_manager.get_configuration(fine_cm.previous_stage_name or "3d_lowres").spacing
        #: coarse / fine spacing per axis (z, y, x): the whole-head pass's resize of the fine case
        self.coarse_ratio = tuple(float(c) / float(f) for c, f in zip(coarse_spacing, fine_cm.spacing))

    def _preprocess(self, predictor, images: np.ndarray, spacing, seg_prev=None) -> dict:
        ppa = PreprocessAdapterFromNpy([images], [seg_prev], [{"spacing": list(spacing)}], [None],
                                       predictor.plans_manager, predictor.dataset_json,
                                       predictor.configuration_manager, num_threads_in_multithreaded=1)
        return next(ppa)

    def candidate_region(self, coarse_prob: np.ndarray, props: dict, shape) -> np.ndarray | None:
        """Coarse probability (input grid, Z, Y, X) above ``roi_threshold``, on the fine stage's preprocessed grid
        ``shape`` (``props``: that grid's ``data_properties``); None when empty (fallback: whole image)."""
        pm = self.fine.plans_manager
        prob = coarse_prob.transpose(pm.transpose_forward)
        prob = prob[tuple(slice(a, b) for a, b in props["bbox_used_for_cropping"])]
        t = torch.from_numpy(np.ascontiguousarray(prob))[None, None].float()
        t = F.interpolate(t, size=[int(s) for s in shape], mode="trilinear", align_corners=False)[0, 0]
        roi = (t > self.roi_threshold).numpy()
        return roi if roi.any() else None

    def coarse_stage(self, images: np.ndarray, spacing, timings: dict | None = None) -> tuple[np.ndarray, dict]:
        """Run the coarse stage and prepare the fine stage's input.

        ``images``: (C, Z, Y, X) float32; ``spacing``: (z, y, x) mm. Returns the coarse thrombus probability on the
        input grid (Z, Y, X) and nnU-Net's preprocessed fine-stage dict (``data``: image channels + the coarse
        segmentation, ``data_properties``; with the global coarse context also ``coarse_contexts``, one per fold,
        which the fine windows sample). Adds ``coarse_preprocess``, ``coarse``, ``fine_preprocess`` seconds to
        ``timings`` when given.
        """
        timings = {} if timings is None else timings
        if self.fine.global_context_network() is not None or self._coarse_whole_head_network() is not None:
            return self._global_coarse_stage(images, spacing, timings)
        # a coarse network without a whole-head pass (nnU-Net's PlainConvUNet): its own sliding window
        t0 = time.perf_counter()
        dct = self._preprocess(self.coarse, images, spacing)
        timings["coarse_preprocess"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.coarse.roi = None
        logits = self.coarse.predict_logits_from_preprocessed_data(dct["data"])
        coarse_prob = foreground_probability_to_input_grid(logits, dct["data_properties"],
                                                           self.coarse.plans_manager)
        timings["coarse"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        coarse_seg = (coarse_prob > 0.5).astype(np.int16)
        dct = self._preprocess(self.fine, images, spacing, seg_prev=coarse_seg[None])
        timings["fine_preprocess"] = time.perf_counter() - t0
        return coarse_prob, dct

    def _coarse_whole_head_network(self):
        """The stage-1 network when it has a whole-head pass (our ThrombusCoarseUNet), else None."""
        net = unwrap_network(self.coarse.network)
        return net if hasattr(net, "forward_with_features") and hasattr(net, "total_stride") else None

    @torch.inference_mode()
    def _stage1_contexts(self, data: torch.Tensor) -> list:
        """data: (C_img, *S) fine preprocessed case -> one CoarseContext per fold of the ``3d_lowres`` model (one
        whole-head pass each), for fine stages that do not sample a global context themselves. The same pass, with
        the same weights, writes the stage-1 maps the fine stage trains on (``training.stage_one``)."""
        return run_coarse_passes(self._coarse_whole_head_network(), self.coarse.list_of_parameters,
                                 data[None].to(self.device), self.coarse_ratio)

    def _global_coarse_stage(self, images: np.ndarray, spacing, timings: dict) -> tuple[np.ndarray, dict]:
        """The coarse map from one whole-head pass per fold: the fine network's own coarse branch when it samples a
        global context, else the ``3d_lowres`` network's (same weights as the branch, which is loaded from it)."""
        t0 = time.perf_counter()
        dct = self._preprocess(self.fine, images, spacing)  # image channels only
        timings["coarse_preprocess"] = 0.0
        timings["fine_preprocess"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        data = torch.as_tensor(dct["data"], dtype=torch.float32)
        if self.fine.global_context_network() is not None:
            contexts = self.fine.whole_case_contexts(data)
        else:
            contexts = self._stage1_contexts(data)
        prob = coarse_probability_on_fine_grid(contexts, data.shape[1:])
        coarse_prob = probability_to_input_grid(prob, dct["data_properties"], self.fine.plans_manager)
        # the fine stage's segmentation channel, as nnU-Net one-hot encodes the previous stage's labels
        dct["data"] = torch.cat([data, (prob > 0.5).to(data.dtype)[None]], 0)
        if self.fine.global_context_network() is not None:
            dct["coarse_contexts"] = contexts
        timings["coarse"] = time.perf_counter() - t0
        return coarse_prob, dct

    def predict(self, images: np.ndarray, spacing) -> CascadeResult:
        """``images``: (C, Z, Y, X) float32, channel order as in training (CTA, NCCT); ``spacing``: (z, y, x) mm."""
        if images.ndim != 4 or images.shape[0] != self.num_channels:
            raise ValueError(f"images must be (C={self.num_channels}, Z, Y, X); got shape {images.shape}")
        timings = {}
        coarse_prob, dct = self.coarse_stage(images, spacing, timings)
        t0 = time.perf_counter()
        roi = None
        if self.roi_restrict:
            roi = self.candidate_region(coarse_prob, dct["data_properties"], dct["data"].shape[1:])
        self.fine.roi = roi
        props = dct["data_properties"]
        spread = FoldSpread(lambda lg: foreground_probability_to_input_grid(lg, props, self.fine.plans_manager))
        logits = ensemble_logits(self.fine, dct["data"], spread, contexts=dct.get("coarse_contexts"))
        timings["fine"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        prob = foreground_probability_to_input_grid(logits, dct["data_properties"], self.fine.plans_manager)
        timings["export"] = time.perf_counter() - t0
        return CascadeResult(probability=prob, segmentation=(prob > 0.5).astype(np.uint8),
                             coarse_probability=coarse_prob, timings_s=timings, fine_tiles=self.fine.last_tiles,
                             fine_placement=self.fine.last_placement,
                             roi_fallback=self.roi_restrict and roi is None, folds=self.folds,
                             fold_spread=spread.result())
