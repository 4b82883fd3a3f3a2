"""nnU-Net's sliding-window predictor, restricted to the neighbourhood of a region of interest.

nnU-Net's cascade slides its fine stage over the whole head (a 320x512x512 CTA at patch 96x160x160 is about 200
windows, times 8 with mirroring). The thrombus is where the coarse stage points, so :class:`ROIRestrictedPredictor`
runs the fine network only near ``roi`` (the coarse candidate region) grown by ``margin`` voxels per axis; voxels
it does not visit are background. Two ways to place the windows:

- ``"grid"`` (default): nnU-Net's own whole-image window grid, keeping every window that holds an ROI voxel. Every
  window that the full sliding window would run over an ROI voxel runs, at the same position and in the same
  order, so inside the ROI the logits are bit for bit those of the full sliding window. At nnU-Net's step of at
  most half a patch, the windows holding a voxel reach at least half a patch beyond it on both sides, so a margin
  up to half a patch is covered by them; voxels of the grown ROI they still leave out (larger margins, steps
  rounded up at odd patch sizes) are covered by adding grid windows greedily, most uncovered voxels first. A small ROI
  takes 2 or 3 windows per axis (8 to 27 in 3D).
- ``"crops"``: one box per candidate component (its bounding box grown by the margin, at least one patch wide,
  overlapping boxes merged), each box predicted with nnU-Net's own sliding window under the same rule. A candidate
  smaller than the margin gives a box of one patch plus one voxel per axis: 2 windows per axis (8 in 3D), but the
  windows sit elsewhere than the full sliding window's, so the logits inside the ROI differ from it.
- ``"auto"``: whichever of the two runs fewer windows.

Every placement visits every voxel of the grown ROI, so a candidate is never cut off.

Global coarse context (``ThrombusCascadeNet(coarse_context="global")``): before its windows run, the predictor
runs the network's coarse branch once over the whole case (or uses the contexts handed to
:func:`~nnunet_thrombus.inference.fold_ensemble.ensemble_logits`, one per fold), and every window, mirrored or not,
samples those features at its own voxels' case positions.

How it extends nnU-Net (2.8): it overrides two public methods of ``nnUNetPredictor`` whole.
``predict_sliding_window_return_logits`` runs its own loop over the windows: nnU-Net's grid
(``compute_steps_for_sliding_window``), padding (``pad_nd_image``) and Gaussian weights (``compute_gaussian``),
float16 accumulation as nnU-Net's, one window at a time, each window predicted where its position is known.
``initialize_from_trained_model_folder`` finds the trainer class by name without ``nnUNet_extTrainer`` in the
process environment, then hands the network to nnU-Net's ``manual_initialization``.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import torch
from acvl_utils.cropping_and_padding.padding import pad_nd_image
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window
from nnunetv2.utilities.helpers import dummy_context
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from scipy import ndimage

from nnunet_thrombus.networks.cascade_net import unwrap_network
from nnunet_thrombus.networks.coarse_context import position_field
from nnunet_thrombus.nnunet_env import trainer_class

#: logits written where no window was run: background certain, thrombus impossible
UNVISITED_BACKGROUND_LOGIT = 10.0

Box = tuple  # tuple of slices, one per spatial axis


def _padding_before(image_shape, patch_size) -> list[int]:
    """Offsets acvl_utils' ``pad_nd_image`` puts before each axis when the image is smaller than the patch."""
    return [max(0, p - s) // 2 for s, p in zip(image_shape, patch_size)]


def _grow_box(lo, hi, margin, patch_size, shape):
    """[lo, hi) per axis grown by ``margin``, widened (centred) to at least the patch, then clipped/shifted into
    the image. Returns new (lo, hi) lists."""
    out_lo, out_hi = [], []
    for a, b, m, p, s in zip(lo, hi, margin, patch_size, shape):
        a, b = a - m, b + m
        if b - a < p:
            extra = p - (b - a)
            a, b = a - extra // 2, b + extra - extra // 2
        if a < 0:
            a, b = 0, b - a
        if b > s:
            a, b = a - (b - s), s
        out_lo.append(max(0, a))
        out_hi.append(min(s, b))
    return out_lo, out_hi


def roi_boxes(roi: np.ndarray, margin, patch_size) -> list[Box]:
    """Boxes to predict for ``roi`` (bool, Z, Y, X): one per connected component (26-connectivity), grown by
    ``margin`` voxels per axis and to at least ``patch_size`` (clipped to the image), overlapping boxes merged.
    Returns disjoint boxes as tuples of slices, sorted; [] for an empty ROI."""
    roi = np.asarray(roi, dtype=bool)
    labels, n = ndimage.label(roi, structure=np.ones((3,) * roi.ndim, dtype=bool))
    boxes = []
    for sl in ndimage.find_objects(labels):
        if sl is not None:
            boxes.append(_grow_box([s.start for s in sl], [s.stop for s in sl], margin, patch_size, roi.shape))
    merged = True
    while merged:  # merge until no two boxes overlap (a merge can create new overlaps)
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                (alo, ahi), (blo, bhi) = boxes[i], boxes[j]
                if all(a0 < b1 and b0 < a1 for a0, a1, b0, b1 in zip(alo, ahi, blo, bhi)):
                    boxes[i] = ([min(x, y) for x, y in zip(alo, blo)], [max(x, y) for x, y in zip(ahi, bhi)])
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(tuple(slice(a, b) for a, b in zip(lo, hi)) for lo, hi in boxes)


def windows_in(shape, patch_size, step: float) -> int:
    """Number of windows nnU-Net's sliding window places on an image of ``shape`` (padded up to the patch)."""
    shape = [max(s, p) for s, p in zip(shape, patch_size)]
    return int(np.prod([len(s) for s in compute_steps_for_sliding_window(shape, patch_size, step)]))


class ROIRestrictedPredictor(nnUNetPredictor):
    """``nnUNetPredictor`` whose sliding window runs only near ``self.roi``.

    Set ``roi`` (bool array, shape of the preprocessed image without channels) and ``margin`` (voxels per axis)
    before predicting; ``roi=None`` gives nnU-Net's full sliding window. ``placement``: ``"grid"`` (default),
    ``"crops"`` or ``"auto"`` (see the module docstring). After a prediction ``last_tiles``
    holds (windows run, windows of the full sliding window) and ``last_placement`` the placement used.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.roi: np.ndarray | None = None
        self.margin: tuple[int, ...] = (0, 0, 0)
        self.placement: str = "grid"
        self.last_tiles: tuple[int, int] = (0, 0)
        self.last_placement: str = "full"
        #: whole-case coarse passes run by this predictor (global coarse context), for bookkeeping and tests
        self.coarse_passes = 0

    def initialize_from_trained_model_folder(self, model_training_output_dir: str, use_folds,
                                             checkpoint_name: str = "checkpoint_final.pth"):
        """Load a trained model folder as nnU-Net 2.8's method of this name does (plans, dataset.json, each fold's
        checkpoint; the network built by the trainer class named in the first checkpoint, with that fold's weights),
        but find the trainer class with :func:`~nnunet_thrombus.nnunet_env.trainer_class` instead of through
        ``nnUNet_extTrainer`` in the process environment."""
        folder = Path(model_training_output_dir)
        if use_folds is None:
            use_folds = self.auto_detect_available_folds(str(folder), checkpoint_name)
        if isinstance(use_folds, str):
            use_folds = [use_folds]
        dataset_json = json.loads((folder / "dataset.json").read_text())
        plans_manager = PlansManager(json.loads((folder / "plans.json").read_text()))
        parameters, first = [], None
        for fold in use_folds:
            checkpoint = torch.load(folder / f"fold_{fold}" / checkpoint_name, map_location=torch.device("cpu"),
                                    weights_only=False)
            first = first or {"trainer": checkpoint["trainer_name"],
                              "configuration": checkpoint["init_args"]["configuration"],
                              "mirror_axes": checkpoint.get("inference_allowed_mirroring_axes")}
            parameters.append(checkpoint["network_weights"])
        if first is None:
            raise FileNotFoundError(f"no fold with {checkpoint_name} in {folder}")
        configuration_manager = plans_manager.get_configuration(first["configuration"])
        network = trainer_class(first["trainer"]).build_network_architecture(
            plans_manager, configuration_manager,
            determine_num_input_channels(plans_manager, configuration_manager, dataset_json),
            plans_manager.get_label_manager(dataset_json).num_segmentation_heads, enable_deep_supervision=False)
        network.load_state_dict(parameters[0])
        self.manual_initialization(network, plans_manager, configuration_manager, parameters, dataset_json,
                                   first["trainer"], first["mirror_axes"])

    def global_context_network(self):
        """The fine network when it samples a whole-case coarse context, else None."""
        net = unwrap_network(self.network)
        return net if getattr(net, "uses_global_context", False) else None

    @torch.inference_mode()
    def whole_case_contexts(self, images: torch.Tensor) -> list:
        """images: (C_img, *S) fine preprocessed case -> one CoarseContext per fold (each fold's coarse branch, one
        pass each). The network is left with the last fold's weights."""
        net = self.global_context_network()
        if net is None:
            raise ValueError("the fine network does not use a global coarse context")
        contexts = []
        for params in self.list_of_parameters:
            net.load_state_dict(params)
            contexts.append(net.whole_case_coarse_pass(images[None].to(self.device)))
            self.coarse_passes += 1
        return contexts

    @torch.inference_mode()
    def predict_with_context(self, data: torch.Tensor, context) -> torch.Tensor:
        """Logits of the currently loaded fold, its windows sampling ``context`` (that fold's CoarseContext)."""
        return self._predict_windows(data, context)

    @torch.inference_mode()
    def predict_sliding_window_return_logits(self, input_image: torch.Tensor) -> torch.Tensor:
        """Logits (C, *S) of the loaded fold for ``input_image`` (C_in, *S) over the windows the ROI needs (all
        without ROI). A global-context network gets one whole-case coarse pass of the loaded fold first (nnU-Net's
        own loops call this: the fold ensemble, the trainer's final validation)."""
        net = self.global_context_network()
        context = None
        if net is not None:
            context = net.whole_case_coarse_pass(input_image[None, :net.num_image_channels].to(self.device))
            self.coarse_passes += 1
        return self._predict_windows(input_image, context)

    def window_slicers(self, image_size, grid_roi: np.ndarray | None = None) -> list:
        """nnU-Net's window grid on a (padded) image of ``image_size`` (3D): one ``(slice(None), sz, sy, sx)`` per
        window in nnU-Net's order; with ``grid_roi``, only the windows :meth:`_grid_kept` keeps."""
        patch = [int(p) for p in self.configuration_manager.patch_size]
        steps = compute_steps_for_sliding_window(tuple(int(s) for s in image_size), patch, self.tile_step_size)
        slicers = [(slice(None), *(slice(a, a + p) for a, p in zip(start, patch)))
                   for start in itertools.product(*steps)]
        return slicers if grid_roi is None else self._grid_kept(slicers, grid_roi, image_size)

    def _grid_kept(self, slicers, roi: np.ndarray, image_size) -> list:
        """The windows of ``slicers`` (on the padded image of ``image_size``) that hold a voxel of ``roi``, plus those
        needed to cover the voxels of ``roi`` grown by the margin that the former leave out (kept in grid order).
        Works inside the bounding box of the grown ROI, so a small ROI in a whole head costs milliseconds."""
        if not roi.any():
            return []
        before = _padding_before(roi.shape, self.configuration_manager.patch_size)
        margin = [int(m) for m in self.margin]
        lo, hi = [], []
        for axis in range(roi.ndim):  # bounding box of the ROI grown by the margin, in padded coordinates
            hit = np.flatnonzero(roi.any(axis=tuple(a for a in range(roi.ndim) if a != axis)))
            lo.append(max(0, int(hit[0]) + before[axis] - margin[axis]))
            hi.append(min(int(image_size[axis]), int(hit[-1]) + 1 + before[axis] + margin[axis]))
        sub = np.zeros([b - a for a, b in zip(lo, hi)], dtype=bool)
        src = tuple(slice(max(a - b, 0), min(c - b, s)) for a, c, b, s in zip(lo, hi, before, roi.shape))
        sub[tuple(slice(x.start + b - a, x.stop + b - a) for x, a, b in zip(src, lo, before))] = roi[src]

        def local(sl):  # the window's part inside the box, in box coordinates; None when they do not meet
            parts = [slice(max(w.start, a) - a, min(w.stop, b) - a) for w, a, b in zip(sl[1:], lo, hi)]
            return None if any(p.stop <= p.start for p in parts) else tuple(parts)

        parts = [local(sl) for sl in slicers]
        keep = [p is not None and bool(sub[p].any()) for p in parts]
        if any(m > 0 for m in margin):
            missing = ndimage.maximum_filter(sub.view(np.uint8), size=[2 * m + 1 for m in margin],
                                             mode="constant").astype(bool)
            for p, k in zip(parts, keep):
                if k:
                    missing[p] = False
            while missing.any():  # greedy cover: next, the window holding the most voxels still missing
                gain = [0 if k or p is None else int(np.count_nonzero(missing[p])) for p, k in zip(parts, keep)]
                best = int(np.argmax(gain))
                keep[best] = True
                missing[parts[best]] = False
        return [sl for sl, k in zip(slicers, keep) if k]

    def _windows_touching(self, roi: np.ndarray) -> int:
        """How many windows of nnU-Net's grid on an image (or crop) of ``roi.shape`` the rule above keeps."""
        padded = [max(s, p) for s, p in zip(roi.shape, self.configuration_manager.patch_size)]
        return len(self.window_slicers(padded, roi))

    def plan_windows(self, shape) -> tuple[str, list[Box], int, int]:
        """For the current ``roi`` on an image of ``shape``: (placement, crop boxes, windows run, full windows)."""
        patch = [int(p) for p in self.configuration_manager.patch_size]
        full = windows_in(shape, patch, self.tile_step_size)
        roi = np.asarray(self.roi, dtype=bool)
        if roi.shape != tuple(shape):
            raise ValueError(f"roi shape {roi.shape} does not match the image {tuple(shape)}")
        if self.placement not in ("auto", "grid", "crops"):
            raise ValueError(f"placement must be auto, grid or crops, got {self.placement!r}")
        grid = self._windows_touching(roi) if self.placement != "crops" else None
        if self.placement == "grid":
            return "grid", [], grid, full
        boxes = roi_boxes(roi, self.margin, patch)
        crops = sum(self._windows_touching(roi[box]) for box in boxes)
        use_crops = self.placement == "crops" or crops < grid
        return ("crops", boxes, crops, full) if use_crops else ("grid", [], grid, full)

    def _predict_windows(self, input_image: torch.Tensor, context) -> torch.Tensor:
        if self.roi is None:
            self.last_placement = "full"
            logits, n_run = self._run_grid(input_image, (0, 0, 0), None, context)
            self.last_tiles = (n_run, n_run)
            return logits
        shape = tuple(input_image.shape[1:])
        placement, boxes, n_run, n_full = self.plan_windows(shape)
        self.last_placement = placement
        roi = np.asarray(self.roi, dtype=bool)
        if placement == "grid":
            logits, _ = self._run_grid(input_image, (0, 0, 0), roi, context)
            _fill_unvisited(logits)
            self.last_tiles = (n_run, n_full)
            return logits
        logits = None
        if not boxes:  # empty ROI: nothing to look at, all background
            logits = torch.full((self.label_manager.num_segmentation_heads, *shape), float("nan"))
        for box in boxes:  # within a crop, too, only the windows that overlap the grown ROI run
            part, _ = self._run_grid(input_image[(slice(None), *box)].contiguous(), [b.start for b in box], roi[box],
                                     context)
            if logits is None:
                logits = torch.full((part.shape[0], *shape), float("nan"), dtype=part.dtype, device=part.device)
            logits[(slice(None), *box)] = part
        _fill_unvisited(logits)
        self.last_tiles = (n_run, n_full)
        return logits

    def _run_grid(self, image: torch.Tensor, offset, grid_roi: np.ndarray | None, context) -> tuple[torch.Tensor, int]:
        """Sliding window over ``image`` (C, *S: the case, or a crop whose first voxel is case voxel ``offset``),
        restricted to the windows ``grid_roi`` needs; returns (logits (C_out, *S), windows run). Results are
        accumulated on the device when ``perform_everything_on_device``, on the CPU after a failure there (as
        nnU-Net 2.8 falls back when the device runs out of memory)."""
        self.network = self.network.to(self.device)
        self.network.eval()
        patch = [int(p) for p in self.configuration_manager.patch_size]
        with torch.autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            data, revert = pad_nd_image(image, patch, "constant", {"value": 0}, True, None)
            slicers = self.window_slicers(data.shape[1:], grid_roi)
            before = _padding_before(image.shape[1:], patch)
            starts = [[sl[a + 1].start - b + int(o) for a, (b, o) in enumerate(zip(before, offset))] for sl in slicers]
            on_device = self.perform_everything_on_device and self.device.type != "cpu"
            try:
                logits = self._accumulate(data, slicers, starts, context, self.device if on_device else "cpu")
            except RuntimeError:
                if not on_device:
                    raise
                logits = self._accumulate(data, slicers, starts, context, torch.device("cpu"))
        return logits[(slice(None), *revert[1:])], len(slicers)

    def _accumulate(self, data: torch.Tensor, slicers, starts, context, results_device) -> torch.Tensor:
        """Gaussian-weighted mean of the windows' logits over ``data`` (C, *S, padded), float16 as nnU-Net's."""
        data = data.to(results_device)
        patch = tuple(int(p) for p in self.configuration_manager.patch_size)
        logits = torch.zeros((self.label_manager.num_segmentation_heads, *data.shape[1:]), dtype=torch.half,
                             device=results_device)
        weight_sum = torch.zeros(data.shape[1:], dtype=torch.half, device=results_device)
        weight = (compute_gaussian(patch, sigma_scale=1. / 8, value_scaling_factor=10, device=results_device)
                  if self.use_gaussian else 1)
        for sl, start in zip(slicers, starts):
            window = data[sl][None].to(self.device)
            prediction = self._predict_window(window, start, context)[0].to(results_device)
            if self.use_gaussian:
                prediction *= weight
            logits[sl] += prediction
            weight_sum[sl[1:]] += weight
        torch.div(logits, weight_sum, out=logits)
        if torch.isinf(logits).any():
            raise RuntimeError("infinite logits after the sliding window (float16 overflow of the window weights)")
        return logits

    def _predict_window(self, x: torch.Tensor, start, context) -> torch.Tensor:
        """Logits of window ``x`` (1, C, *P) whose first voxel is case voxel ``start``, averaged over the allowed
        mirrorings; with a coarse ``context`` the network samples it at the window's positions (mirrored with it)."""
        kwargs = {}
        if context is not None:
            positions = position_field(start, x.shape[2:], device=x.device)[None].expand(x.shape[0], -1, -1, -1, -1)
            kwargs["coarse_features"] = self.global_context_network().context_features(context, positions)
        prediction = self.network(x, **kwargs)
        axes = [] if not self.use_mirroring or self.allowed_mirroring_axes is None else [
            m + 2 for m in self.allowed_mirroring_axes]
        combos = [c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]
        for c in combos:  # a mirrored window samples the same positions, mirrored
            flipped = {k: [torch.flip(f, c) for f in v] for k, v in kwargs.items()}
            prediction += torch.flip(self.network(torch.flip(x, c), **flipped), c)
        return prediction / (len(combos) + 1)


def _fill_unvisited(logits: torch.Tensor) -> None:
    """Voxels no window visited (NaN) become certain background, in place. ``logits``: (C, Z, Y, X)."""
    unvisited = torch.isnan(logits[0])
    if unvisited.any():
        logits[0][unvisited] = UNVISITED_BACKGROUND_LOGIT
        for c in range(1, logits.shape[0]):
            logits[c][unvisited] = -UNVISITED_BACKGROUND_LOGIT
