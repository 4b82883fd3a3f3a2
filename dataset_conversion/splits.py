"""Held-out test selection and 5-fold cross-validation splits stratified by occlusion site (fixed seed)."""
from __future__ import annotations

import numpy as np


def _stratified_order(ids: list[str], sites: list[str], seed: int) -> list[str]:
    """ids grouped by site (sites sorted), shuffled within each site (seeded); dealing this list round-robin
    or taking every k-th entry spreads each site proportionally."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for cid, site in zip(ids, sites):
        groups.setdefault(site or "unknown", []).append(cid)
    ordered = []
    for site in sorted(groups):
        members = sorted(groups[site])
        ordered += [members[i] for i in rng.permutation(len(members))]
    return ordered


def make_folds(ids: list[str], sites: list[str], n_folds: int = 5, seed: int = 12345) -> list[dict]:
    """nnU-Net ``splits_final.json`` content: ``[{"train": [...], "val": [...]}, ...]``.

    Cases are dealt round-robin into folds after a site-grouped seeded shuffle, so every fold gets each
    site in proportion. With fewer cases than ``n_folds`` there are ``len(ids)`` folds (none for < 2 cases).
    """
    if len(ids) != len(sites):
        raise ValueError(f"{len(ids)} ids but {len(sites)} sites")
    k = min(n_folds, len(ids))
    if k < 2:
        return []
    ordered = _stratified_order(ids, sites, seed)
    val = [sorted(ordered[i::k]) for i in range(k)]
    return [{"train": sorted(set(ids) - set(v)), "val": v} for v in val]


def pick_test_cases(cases, test_fraction: float = 0.0, test_cases: list[str] | None = None,
                    seed: int = 12345) -> set[str]:
    """case_ids of the held-out test set: ``test_cases`` (patient names or case ids) if given, else
    ``round(test_fraction * n)`` cases spread over sites (seeded)."""
    if test_cases:
        wanted = set(test_cases)
        chosen = {c.case_id for c in cases if c.case_id in wanted or c.patient in wanted}
        unknown = wanted - {c.case_id for c in cases} - {c.patient for c in cases}
        if unknown:
            raise ValueError(f"test case(s) not found among the inputs: {sorted(unknown)}")
        return chosen
    n_test = int(round(test_fraction * len(cases)))
    if n_test == 0:
        return set()
    ordered = _stratified_order([c.case_id for c in cases], [c.site for c in cases], seed + 1)
    # take every k-th case of the site-grouped order so that sites are represented in proportion
    step = len(ordered) / n_test
    return {ordered[int(i * step)] for i in range(n_test)}
