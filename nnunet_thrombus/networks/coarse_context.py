"""Whole-case coarse context: stage 1 run once over the whole head, sampled at each fine voxel's position.

Zhu et al. (AJNR 2023) pass the whole skull-stripped head, downsampled to coarse spacing, through the coarse
model "to obtain maximal contextual information", and concatenate its fused features at every level of the fine
stage. Here the coarse pass runs once per case (:func:`run_coarse_pass`) and every fine patch, wherever it lies and
however it was rotated, scaled or mirrored by augmentation, reads the features at its voxels' own positions
(:func:`sample_context`).

Geometry (one convention, used by training and inference alike). ``S`` is the fine case's shape (the nnU-Net
preprocessed ``3d_cascade_fullres`` array, z, y, x), ``ratio`` the coarse / fine spacing per axis:

- coarse input: the fine case's image channels resized (trilinear, ``align_corners=False``) to
  ``N = round(S / ratio)`` voxels, so both grids span the same physical box, then zero-padded at the high end to
  ``P``, the next multiple of the coarse network's total stride;
- a fine voxel index ``i`` (continuous) sits at coarse index ``c = (i + 0.5) * N / S - 0.5``;
- coarse decoder level ``k`` (stride ``t_k = P / M_k`` with ``M_k`` its size) holds that point at
  ``(c + 0.5) / t_k - 0.5``, which :func:`torch.nn.functional.grid_sample` (``align_corners=False``, zeros outside)
  interpolates.

Positions travel as homogeneous fields ``(B, 4, *s)`` = ``(i*w, j*w, k*w, w)``: ``w`` is 1 where a voxel came from
the case crop and drops towards 0 where augmentation sampled outside it (zero padding), so ``i = (i*w) / w``
survives nnU-Net's spatial transform exactly for affine maps, and voxels with ``w < 0.5`` get no context (zeros).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

#: a position this far outside every grid samples zeros
_FAR = -1.0e4


@dataclass
class CoarseContext:
    """Stage-1 output for one whole case.

    logits: (1, K, *N) coarse logits on the unpadded coarse grid; features: one map per coarse decoder level,
    (1, C_k, *M_k), highest resolution first, on the padded grid; case_shape: ``S`` (fine voxels); coarse_shape: ``N``;
    padded_shape: ``P`` (coarse voxels).
    """

    logits: torch.Tensor
    features: list
    case_shape: tuple
    coarse_shape: tuple
    padded_shape: tuple

    @property
    def nbytes(self) -> int:
        return sum(f.numel() * f.element_size() for f in self.features) + self.logits.numel() * self.logits.element_size()


def coarse_grid_shape(case_shape: Sequence[int], ratio: Sequence[float]) -> list[int]:
    """``N = round(S / ratio)`` per axis (at least 1): the whole case at coarse spacing, in coarse voxels."""
    return [max(1, int(round(int(s) / float(r)))) for s, r in zip(case_shape, ratio)]


def padded_shape(shape: Sequence[int], stride: Sequence[int]) -> list[int]:
    """``shape`` rounded up to a multiple of ``stride`` per axis."""
    return [int(math.ceil(int(s) / int(t)) * int(t)) for s, t in zip(shape, stride)]


def coarse_input(images: torch.Tensor, ratio: Sequence[float], stride: Sequence[int]) -> tuple[torch.Tensor, list]:
    """images: (1, C, *S) fine case -> ((1, C, *P) coarse network input, ``N``). Zero padding at the high end."""
    n = coarse_grid_shape(images.shape[2:], ratio)
    small = F.interpolate(images.float(), size=n, mode="trilinear" if images.ndim == 5 else "bilinear",
                          align_corners=False)
    p = padded_shape(n, stride)
    pad = []
    for have, want in zip(reversed(n), reversed(p)):
        pad += [0, want - have]
    return F.pad(small, pad), n


@torch.no_grad()
def run_coarse_pass(coarse_net: torch.nn.Module, images: torch.Tensor, ratio: Sequence[float]) -> CoarseContext:
    """One forward pass of ``coarse_net`` (a ThrombusCoarseUNet: ``forward_with_features``, ``total_stride``) over
    the whole case. images: (1, C_img, *S) at fine spacing, on the network's device."""
    if images.shape[0] != 1:
        raise ValueError(f"run_coarse_pass takes one case (1, C, *S), got {tuple(images.shape)}")
    x, n = coarse_input(images, ratio, coarse_net.total_stride)
    logits, features = coarse_net.forward_with_features(x)
    if isinstance(logits, (list, tuple)):
        logits = logits[0]
    logits = logits[(slice(None), slice(None), *(slice(0, s) for s in n))]
    return CoarseContext(logits=logits, features=[f.float() for f in features],
                         case_shape=tuple(int(s) for s in images.shape[2:]), coarse_shape=tuple(n),
                         padded_shape=tuple(int(s) for s in x.shape[2:]))


def coarse_probability_on_fine_grid(contexts: Sequence[CoarseContext], shape: Sequence[int]) -> torch.Tensor:
    """Mean over ``contexts`` (one per fold) of the coarse thrombus probability (1 - background softmax), each
    context's whole-case coarse logits resized (trilinear, ``align_corners=False``) to the fine case grid ``shape``
    ``S`` -> (z, y, x) float32 on the CPU.

    This is the one coarse map of the cascade: ``predict`` thresholds it for the fine stage's segmentation channel
    and candidate region, and the stage-1 export for fine-stage training writes the same threshold of it."""
    if not contexts:
        raise ValueError("coarse_probability_on_fine_grid needs at least one CoarseContext")
    total = None
    for ctx in contexts:
        up = F.interpolate(ctx.logits.float(), size=[int(s) for s in shape], mode="trilinear", align_corners=False)
        prob = (1.0 - torch.softmax(up, dim=1)[0, 0]).cpu()
        total = prob if total is None else total + prob
    return total / len(contexts)


def coarse_segmentation_on_fine_grid(contexts: Sequence[CoarseContext], shape: Sequence[int]) -> torch.Tensor:
    """The fine stage's segmentation channel: :func:`coarse_probability_on_fine_grid` above 0.5 -> (z, y, x) uint8
    (for two classes the same as the argmax of the fold-mean softmax)."""
    return (coarse_probability_on_fine_grid(contexts, shape) > 0.5).to(torch.uint8)


def run_coarse_passes(coarse_net: torch.nn.Module, parameters, images: torch.Tensor, ratio: Sequence[float]) -> list:
    """One :func:`run_coarse_pass` per fold: ``parameters`` holds a state dict per fold (``None``: the weights the
    network has). ``coarse_net`` runs in eval mode and is left in the mode it had, with the last fold's weights."""
    was_training = coarse_net.training
    coarse_net.eval()
    contexts = []
    for params in parameters:
        if params is not None:
            coarse_net.load_state_dict(params)
        contexts.append(run_coarse_pass(coarse_net, images, ratio))
    coarse_net.train(was_training)
    return contexts


def position_field(start: Sequence[int], size: Sequence[int], device=None) -> torch.Tensor:
    """Homogeneous positions (4, *size) of a box whose first voxel is case voxel ``start`` (may be negative)."""
    axes = [torch.arange(int(a), int(a) + int(n), dtype=torch.float32, device=device) for a, n in zip(start, size)]
    grids = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([*grids, torch.ones_like(grids[0])])


def fine_level_sizes(patch: Sequence[int], strides: Sequence[Sequence[int]]) -> list[list[int]]:
    """Spatial size of each fine decoder level (highest resolution first) for a patch of ``patch`` voxels."""
    sizes, cur = [], [int(p) for p in patch]
    for s in strides[:-1]:
        s = [int(v) for v in (s if isinstance(s, (list, tuple)) else [s] * len(cur))]
        cur = [c // v for c, v in zip(cur, s)]
        sizes.append(list(cur))
    return sizes


def _level_indices(h: torch.Tensor, ctx: CoarseContext, level_shape: Sequence[int]) -> torch.Tensor:
    """h: (4, *s) homogeneous fine positions -> (3, *s) continuous indices into a coarse level of ``level_shape``
    (``_FAR`` where w < 0.5)."""
    w = h[3]
    valid = w >= 0.5
    out = []
    for a in range(3):
        i = h[a] / w.clamp(min=1e-6)
        c = (i + 0.5) * ctx.coarse_shape[a] / ctx.case_shape[a] - 0.5
        t = ctx.padded_shape[a] / level_shape[a]
        out.append(torch.where(valid, (c + 0.5) / t - 0.5, torch.full_like(c, _FAR)))
    return torch.stack(out)


def _grid_sample_block(feature: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """feature: (1, C, *M) on any device; idx: (3, *s) continuous indices -> (C, *s) trilinear samples, zeros
    outside. Only the sub-block the samples touch is moved to ``idx``'s device, which gives the same values as
    sampling the whole map (every in-bounds neighbour of every sample lies in the block)."""
    m = feature.shape[2:]
    valid = idx[0] > _FAR / 2
    lo, hi = [], []
    for a in range(3):
        v = idx[a][valid]
        if v.numel() == 0:
            return torch.zeros((feature.shape[1], *idx.shape[1:]), device=idx.device)
        lo.append(max(0, min(int(m[a]) - 1, int(math.floor(float(v.min()))))))
        hi.append(max(lo[-1] + 1, min(int(m[a]), int(math.floor(float(v.max()))) + 2)))
    block = feature[(0, slice(None), *(slice(a, b) for a, b in zip(lo, hi)))].to(idx.device, torch.float32)
    n = [b - a for a, b in zip(lo, hi)]
    grid = torch.stack([2.0 * (idx[a] - lo[a] + 0.5) / n[a] - 1.0 for a in (2, 1, 0)], dim=-1)
    return F.grid_sample(block[None], grid[None], mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def sample_context(contexts: Sequence[CoarseContext], positions: torch.Tensor, level_sizes: Sequence[Sequence[int]],
                   level_map: Sequence[int]) -> list[torch.Tensor]:
    """Coarse features at the fine voxels' positions, for every fine decoder level.

    contexts: one CoarseContext per batch sample (the same object may repeat); positions: (B, 4, *s) homogeneous
    fine case indices at patch resolution; level_sizes: the fine decoder levels' spatial sizes (highest resolution
    first); level_map: coarse level used by each fine level. Returns per fine level (B, C_k, *level_sizes[k]) on
    ``positions``' device.
    """
    if positions.ndim != 5 or positions.shape[1] != 4 or positions.shape[0] != len(contexts):
        raise ValueError(f"positions must be (B={len(contexts)}, 4, Z, Y, X), got {tuple(positions.shape)}")
    out = []
    for size, level in zip(level_sizes, level_map):
        h = positions.float()
        if list(h.shape[2:]) != list(size):  # affine fields: trilinear resize gives the level's voxel centres
            h = F.interpolate(h, size=list(size), mode="trilinear", align_corners=False)
        per_sample = []
        for b, ctx in enumerate(contexts):
            feature = ctx.features[level]
            per_sample.append(_grid_sample_block(feature, _level_indices(h[b], ctx, feature.shape[2:])))
        out.append(torch.stack(per_sample))
    return out
