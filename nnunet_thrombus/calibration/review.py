"""Per-case uncertainty from the ensemble's probabilities, and the ``review`` flag fitted on validation folds.

Uncertainty (:func:`case_uncertainty`), all from the thrombus probability ``p`` (Z, Y, X) that ``predict`` reports
(mean over the folds; with TTA on, each fold's probability is already the mirror-averaged one, so TTA disagreement
raises the entropy too):

- ``mean_entropy_bits``: mean binary entropy H(p) = -p log2 p - (1-p) log2 (1-p) over the predicted clot (0 = every
  voxel at 0 or 1, 1 = every voxel at 0.5); None when nothing is predicted;
- ``max_probability_in_brain``: the largest p inside the brain outside the kept clot (a clot-free prediction with a
  voxel at 0.45 nearly called a clot; one at 0.95 had a component dropped by post-processing);
- ``fold_std_in_clot``: mean over the clot of the per-voxel standard deviation of the folds' probabilities, and
  ``fold_disagreement``: share of the voxels some fold calls thrombus where the folds do not all agree (None with one
  fold);
- ``score`` (bits, 0-1): ``mean_entropy_bits`` for a predicted clot, H(min(max_probability_in_brain, 0.5)) for a
  clot-free prediction (rises to 1 as the strongest voxel approaches the 0.5 cut). One number per case, used by
  ``evaluate`` for Spearman rho with Dice and the AUROC for Dice < 0.6.

:class:`ReviewRule` sets ``review`` when the score reaches the threshold for its kind of prediction (clot /
clot-free), or when the case has two or more plausible clot candidates. :func:`fit_review_rule` chooses the two
thresholds on validation cases (never the test set): the highest threshold that still flags ``target_sensitivity``
of the bad cases (Dice < 0.6, a false-positive call, or a miss); stored as ``review_rule.json`` with the model.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from nnunet_thrombus.calibration.artifact import FittedArtifact
from nnunet_thrombus.vocabulary import POOR_DICE

#: case flags (from component selection) that always ask for review
REVIEW_CASE_FLAGS = ("multiple_candidates", "dense_candidate")


def binary_entropy_bits(p) -> np.ndarray:
    """H(p) in bits, elementwise; H(0) = H(1) = 0, H(0.5) = 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    out = np.zeros_like(p)
    inside = (p > 0) & (p < 1)
    q = p[inside]
    out[inside] = -(q * np.log2(q) + (1 - q) * np.log2(1 - q))
    return out


def case_uncertainty(probability, mask, brain=None, fold_std=None, fold_votes=None, n_folds: int = 1) -> dict:
    """Uncertainty of one case (module docstring).

    probability: (Z, Y, X) mean thrombus probability; mask: (Z, Y, X) kept clot; brain: (Z, Y, X) brain mask or None
    (whole image); fold_std: (Z, Y, X) per-voxel std of the folds' probabilities or None; fold_votes: (Z, Y, X) number
    of folds with p > 0.5 or None; n_folds: folds averaged.
    """
    p = np.asarray(probability, dtype=np.float32)
    m = np.asarray(mask) > 0
    b = np.ones(p.shape, bool) if brain is None else np.asarray(brain) > 0
    if p.shape != m.shape or p.shape != b.shape:
        raise ValueError(f"probability {p.shape}, mask {m.shape} and brain {b.shape} must have one shape")
    outside = b & ~m
    max_p = float(p[outside].max()) if outside.any() else 0.0
    out = {"mean_entropy_bits": float(binary_entropy_bits(p[m]).mean()) if m.any() else None,
           "max_probability_in_brain": max_p, "fold_std_in_clot": None, "fold_disagreement": None,
           "n_folds": int(n_folds)}
    if fold_std is not None and m.any():
        out["fold_std_in_clot"] = float(np.asarray(fold_std)[m].mean())
    if fold_votes is not None and n_folds > 1:
        v = np.asarray(fold_votes)
        some = v > 0
        out["fold_disagreement"] = float(np.count_nonzero(some & (v < n_folds)) / np.count_nonzero(some)) \
            if some.any() else 0.0
    out["kind"] = "clot" if m.any() else "clot-free"
    out["score"] = out["mean_entropy_bits"] if m.any() else float(binary_entropy_bits(min(max_p, 0.5)))
    return out


@dataclass(frozen=True)
class ReviewRule(FittedArtifact):
    """Score thresholds (bits) at or above which a case is flagged for review, one per kind of prediction.
    ``review_rule.json`` keeps them under ``"rule"``, beside the fit's record."""

    FILE = "review_rule.json"
    NEST = "rule"

    clot_score: float = 0.5
    clot_free_score: float = 0.9
    target_sensitivity: float = 0.9

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not (np.isfinite(v) and 0.0 <= v <= 1.0 + 1e-9):
                raise ValueError(f"{f.name} must be in [0, 1], got {v}")

    def review(self, uncertainty: dict, case_flags=()) -> dict:
        """{"review": bool, "reasons": [str]} for a case's :func:`case_uncertainty` and its component flags."""
        reasons = []
        score, kind = uncertainty["score"], uncertainty["kind"]
        limit = self.clot_score if kind == "clot" else self.clot_free_score
        if score >= limit:
            what = "mean entropy in the clot" if kind == "clot" else "strongest voxel's entropy (clot-free)"
            reasons.append(f"{what} {score:.3f} bits >= {limit:.3f} (validation threshold)")
        for flag in case_flags:
            if flag == "multiple_candidates":
                reasons.append("two or more plausible clot candidates: all are reported, none chosen by size")
            elif flag == "dense_candidate":
                reasons.append("a kept candidate is as dense as calcium: calcified thrombus or plaque")
        return {"review": bool(reasons), "reasons": reasons}


def threshold_for_sensitivity(scores_bad, scores_good, target: float, default: float) -> float:
    """Highest threshold t (flag when score >= t) flagging at least ``target`` of ``scores_bad``; candidates are the
    observed scores. ``default`` when there is no bad case."""
    bad = sorted(float(s) for s in scores_bad)
    if not bad:
        return float(default)
    need = int(np.ceil(target * len(bad) - 1e-9))
    # flagging the ``need`` highest bad scores: the threshold is the need-th highest bad score
    t = bad[len(bad) - need] if need > 0 else np.inf
    return float(min(t, 1.0))


def fit_review_rule(cases, target_sensitivity: float = 0.9, base: ReviewRule = ReviewRule()) -> tuple[ReviewRule, dict]:
    """Fit on validation ``cases``: dicts {"uncertainty": case_uncertainty(...), "bad": bool}. Returns (rule, info
    with the validation sensitivity and specificity of the fitted flag per kind)."""
    cases = list(cases)
    if not cases:
        raise ValueError("fit_review_rule needs at least one validation case")
    thresholds = {}
    for kind, default in (("clot", base.clot_score), ("clot-free", base.clot_free_score)):
        sub = [c for c in cases if c["uncertainty"]["kind"] == kind]
        thresholds[kind] = threshold_for_sensitivity([c["uncertainty"]["score"] for c in sub if c["bad"]],
                                                     [c["uncertainty"]["score"] for c in sub if not c["bad"]],
                                                     target_sensitivity, default)
    rule = ReviewRule(clot_score=thresholds["clot"], clot_free_score=thresholds["clot-free"],
                      target_sensitivity=target_sensitivity)
    flags = [rule.review(c["uncertainty"], c.get("flags", ()))["review"] for c in cases]
    bad = [bool(c["bad"]) for c in cases]
    tp = sum(f and b for f, b in zip(flags, bad))
    tn = sum(not f and not b for f, b in zip(flags, bad))
    info = {"n_cases": len(cases), "n_bad": sum(bad),
            "sensitivity": tp / sum(bad) if sum(bad) else None,
            "specificity": tn / (len(bad) - sum(bad)) if len(bad) > sum(bad) else None,
            "bad_definition": f"Dice < {POOR_DICE} (reference clot), a false-positive call (clot-free reference), "
                              "or a miss"}
    return rule, info


def is_bad(dice_value: float, ref_present: bool, pred_present: bool) -> bool:
    """The case the review flag should catch: Dice < ``POOR_DICE`` (0.6) with a reference clot (a miss included), or a clot called
    in a clot-free head."""
    if ref_present:
        return (not pred_present) or dice_value < POOR_DICE
    return bool(pred_present)
