"""``nnunet_thrombus benchmark --budget smoke`` end to end on the tiny cohort: the table is complete.

CI runs four of the six variants, one per code path (plain 3d_fullres; cascade with its own stage 1 for vanilla
and for our trainer; fine stage on a shared stage 1): the two left out (noCBAM, noPyramidFusion) take the same
path as ``ours`` with another trainer name, and all six cost about 9 min of CPU here (13 subprocesses instead of
24). ``nnunet_thrombus benchmark --budget smoke`` runs all six (docs/benchmark.md).
"""
from __future__ import annotations

import csv
import json
import math

import pytest

from nnunet_thrombus.benchmark.budgets import VARIANTS
from nnunet_thrombus.benchmark.table import COLUMNS, COSTS

pytestmark = pytest.mark.slow
RUN = ["vanilla_3d_fullres", "vanilla_cascade", "ours", "noCoarseFeatures"]


@pytest.fixture(scope="module")
def smoke_run(tiny_cascade, tmp_path_factory):
    """Four variants under the smoke budget; plans reused from the shared tiny cascade (same features/patch)."""
    from nnunet_thrombus.benchmark.benchmark import run_benchmark

    out = tmp_path_factory.mktemp("bench_smoke")
    rows = run_benchmark(501, "smoke", out, raw=tiny_cascade["cohort"]["raw"],
                         preprocessed=tiny_cascade["ws"].preprocessed, variants=RUN[1:], command="pytest smoke",
                         progress=False)
    return out, rows


def test_table_has_every_variant_and_column(smoke_run):
    out, rows = smoke_run
    with open(out / "benchmark.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        table = list(reader)
    assert [r["variant"] for r in table] == RUN  # the reference row is added by the runner
    for r in table:
        assert all(r[k] != "" for k in ("dice_median", "lvo_sensitivity", "lvo_specificity", "n_test")), r
        assert 0.0 <= float(r["dice_median"]) <= 1.0 and int(r["n_test"]) == 3
        for k in COSTS:
            assert math.isfinite(float(r[k])) and float(r[k]) > 0, (r["variant"], k, r[k])
            assert math.isfinite(float(r[f"{k}_ratio"]))
    ref = table[0]
    assert all(float(ref[f"{k}_ratio"]) == 1.0 for k in COSTS)
    md = (out / "benchmark.md").read_text()
    assert "Command: `pytest smoke`" in md and all(VARIANTS[v].label in md for v in RUN)


def test_costs_follow_the_stages(smoke_run):
    out, _ = smoke_run
    steps = json.loads((out / "benchmark.json").read_text())["steps"]
    # one epoch per stage; a cascade has two stages, the plain 3d_fullres one
    assert [len(steps[v]["epoch_seconds"]) for v in RUN] == [1, 2, 2, 2]
    # train + export-next-stage + train for cascades; predict lowres + predict fine
    assert [len(steps[v]["train"]) for v in RUN] == [1, 3, 3, 3]
    assert [len(steps[v]["predict"]) for v in RUN] == [1, 2, 2, 2]
    # noCoarseFeatures reuses the stage 1 of ours: the very same measured numbers
    assert steps["noCoarseFeatures"]["epoch_seconds"][0] == steps["ours"]["epoch_seconds"][0]
    assert steps["noCoarseFeatures"]["predict"][0] == steps["ours"]["predict"][0]
    assert steps["vanilla_cascade"]["train"][0] != steps["ours"]["train"][0]
