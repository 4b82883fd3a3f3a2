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
clot-free), or when the case carries one of the rule's case flags. The component rule raises two
(:data:`COMPONENT_FLAGS`: two or more plausible clot candidates, a candidate as dense as calcium) and the LVO rule
two (:data:`CALL_FLAGS`, ``calibration.lvo.call_flags``: the call's site was changed by the ICA calibre check, the
call rests on a component under twice the rule's minimum volume). :func:`fit_review_rule` chooses the thresholds
and the flags on validation cases (never the test set): among the rules that flag ``target_sensitivity`` of the
bad cases (:func:`is_bad`: Dice < 0.6, a false-positive call, a miss, or a wrong LVO call), the most specific;
stored as ``review_rule.json`` with the model.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from nnunet_thrombus.calibration.artifact import FittedArtifact
from nnunet_thrombus.vocabulary import POOR_DICE

#: case flags of the component selection (``calibration.components``)
COMPONENT_FLAGS = ("multiple_candidates", "dense_candidate")
#: case flags of the occlusion call (``calibration.lvo.call_flags``)
CALL_FLAGS = ("site_by_calibre", "small_call")
#: every case flag a review rule may use; an unfitted rule (and a file older than the flag fit) uses
#: ``COMPONENT_FLAGS``
REVIEW_CASE_FLAGS = COMPONENT_FLAGS + CALL_FLAGS
#: why each flag asks for review, as the report says it
FLAG_REASONS = {
    "multiple_candidates": "two or more plausible clot candidates: all are reported, none chosen by size",
    "dense_candidate": "a kept candidate is as dense as calcium: calcified thrombus or plaque",
    "site_by_calibre": "the call's site comes from the ICA calibre check (a thin clot in the ICA zone, near the "
                       "carotid T, where the site rule errs most)",
    "small_call": "the call rests on a component under twice the LVO rule's minimum volume (at least 10 mm3): a "
                  "few voxels decide it",
}


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
    #: the case flags that ask for review (a subset of ``REVIEW_CASE_FLAGS``; the fit keeps a flag only where it
    #: helps; older files without this field keep ``COMPONENT_FLAGS``)
    case_flags: tuple = COMPONENT_FLAGS

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "case_flags":
                unknown = sorted(set(v) - set(REVIEW_CASE_FLAGS))
                if unknown:
                    raise ValueError(f"case_flags must be among {REVIEW_CASE_FLAGS}, got {unknown}")
                object.__setattr__(self, "case_flags", tuple(v))
            elif not (np.isfinite(v) and 0.0 <= v <= 1.0 + 1e-9):
                raise ValueError(f"{f.name} must be in [0, 1], got {v}")

    def review(self, uncertainty: dict, case_flags=()) -> dict:
        """{"review": bool, "reasons": [str]} for a case's :func:`case_uncertainty` and its component flags."""
        reasons = []
        score, kind = uncertainty["score"], uncertainty["kind"]
        limit = self.clot_score if kind == "clot" else self.clot_free_score
        if score >= limit:
            what = "mean entropy in the clot" if kind == "clot" else "strongest voxel's entropy (clot-free)"
            reasons.append(f"{what} {score:.3f} bits >= {limit:.3f} (validation threshold)")
        reasons += [FLAG_REASONS[f] for f in case_flags if f in self.case_flags]
        return {"review": bool(reasons), "reasons": reasons}


def _flag_subsets() -> list[tuple]:
    """Every subset of ``REVIEW_CASE_FLAGS``, largest first (so a tie keeps the flags)."""
    subsets = [tuple(f for i, f in enumerate(REVIEW_CASE_FLAGS) if mask >> i & 1)
               for mask in range(2 ** len(REVIEW_CASE_FLAGS))]
    return sorted(subsets, key=len, reverse=True)


def _rule_for_flags(cases, flags: tuple, target: float, base: "ReviewRule") -> "ReviewRule":
    """Score thresholds per kind for a rule that also flags ``flags``: the bad cases those flags catch count toward
    ``target``; the score catches enough of the rest (the highest such threshold; 1.0 when the flags alone reach
    it, ``base``'s threshold for a kind without bad cases)."""
    thresholds = {}
    for kind, default in (("clot", base.clot_score), ("clot-free", base.clot_free_score)):
        bad = [c for c in cases if c["uncertainty"]["kind"] == kind and c["bad"]]
        if not bad:
            thresholds[kind] = float(default)
            continue
        rest = sorted(float(c["uncertainty"]["score"]) for c in bad if not set(c.get("flags", ())) & set(flags))
        need = int(np.ceil(target * len(bad) - 1e-9)) - (len(bad) - len(rest))  # the flags catch the others
        thresholds[kind] = 1.0 if need <= 0 else float(min(rest[len(rest) - need], 1.0))
    return ReviewRule(clot_score=thresholds["clot"], clot_free_score=thresholds["clot-free"],
                      target_sensitivity=target, case_flags=flags)


def _sens_spec(rule: "ReviewRule", cases) -> tuple[float | None, float | None]:
    flags = [rule.review(c["uncertainty"], c.get("flags", ()))["review"] for c in cases]
    bad = [bool(c["bad"]) for c in cases]
    tp = sum(f and b for f, b in zip(flags, bad))
    tn = sum(not f and not b for f, b in zip(flags, bad))
    return (tp / sum(bad) if sum(bad) else None,
            tn / (len(bad) - sum(bad)) if len(bad) > sum(bad) else None)


def fit_review_rule(cases, target_sensitivity: float = 0.9, base: ReviewRule = ReviewRule()) -> tuple[ReviewRule, dict]:
    """Fit on validation ``cases``: dicts {"uncertainty": case_uncertainty(...), "bad": bool, "flags": [case
    flags]}. Objective: flag at least ``target_sensitivity`` of the bad cases of each kind and, among the rules that
    do, the highest specificity. Candidates: every subset of ``REVIEW_CASE_FLAGS``, each with the highest score
    thresholds that still reach the target together with the bad cases those flags catch (:func:`_rule_for_flags`);
    a tie keeps more flags. A flag that fires mostly on good cases is left out, one that catches bad cases the
    score misses stays. Returns (rule, info with the validation
    sensitivity and specificity of the chosen rule and of every candidate)."""
    cases = list(cases)
    if not cases:
        raise ValueError("fit_review_rule needs at least one validation case")
    candidates = [_rule_for_flags(cases, flags, target_sensitivity, base) for flags in _flag_subsets()]
    scored = [(rule, *_sens_spec(rule, cases)) for rule in candidates]
    rule, sens, spec = max(scored, key=lambda t: (-1.0 if t[2] is None else t[2], len(t[0].case_flags)))
    info = {"n_cases": len(cases), "n_bad": sum(bool(c["bad"]) for c in cases), "sensitivity": sens,
            "specificity": spec,
            "case_flags": list(rule.case_flags),
            "candidates": [{"case_flags": list(r.case_flags), "sensitivity": se, "specificity": sp}
                           for r, se, sp in scored],
            "bad_definition": f"Dice < {POOR_DICE} (reference clot), a false-positive call (clot-free reference), "
                              "a miss, or a wrong LVO call"}
    return rule, info


def is_bad(dice_value: float, ref_present: bool, pred_present: bool, lvo_wrong: bool = False) -> bool:
    """The case the review flag should catch: Dice < ``POOR_DICE`` (0.6) with a reference clot (a miss included), a
    clot called in a clot-free head, or a wrong LVO call (``lvo_wrong``: the call says LVO and the reference does
    not, or the other way round)."""
    if lvo_wrong:
        return True
    if ref_present:
        return (not pred_present) or dice_value < POOR_DICE
    return bool(pred_present)
