"""``run_benchmark(BenchmarkRequest(...))``: data -> plans -> train/predict every variant -> evaluate -> one table (CSV + Markdown).

Outputs in ``out_dir``: ``benchmark.csv`` (columns of :mod:`nnunet_thrombus.benchmark.table`), ``subgroups.csv``
(median Dice by site and by clot volume, per row), ``benchmark.md`` (all of it as Markdown tables, headed by the
command and the budget), ``benchmark.json`` (rows, subgroups, seed spread, every subprocess's cost),
``predictions/<variant>/``, ``evaluation/<variant>/`` (evaluate's per-case ``metrics.csv``) and nnU-Net folders and
logs under ``work/``.
"""
from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from nnunet_thrombus.atomic_io import write_csv, write_json, write_text
from nnunet_thrombus.benchmark.budgets import OURS, REFERENCE, SEED_PAIRS, VESSEL_PLANS, get_budget, select_variants
from nnunet_thrombus.benchmark.case_metrics import false_positive_folder, read_case_rows
from nnunet_thrombus.benchmark.runner import ensure_plans, prepare_data, train_and_predict
from nnunet_thrombus.benchmark.table import (COLUMNS, SUBGROUP_COLUMNS, accuracy_columns, add_comparisons, add_ratios,
                                             cost_columns, evidence, subgroup_rows, to_markdown)
from nnunet_thrombus.evaluation.evaluate import EvaluationOptions, evaluate_folder
from nnunet_thrombus.evaluation.statistics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from nnunet_thrombus.training.workflow import NnunetWorkspace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchmarkRequest:
    """What to benchmark, where, and how.

    Attributes:
        dataset_id: nnU-Net dataset id.
        budget: ``smoke``, ``cpu`` or ``gpu`` (see :mod:`nnunet_thrombus.benchmark.budgets`).
        out_dir: output folder; nnU-Net's preprocessed/results folders go to ``out_dir/work``.
        variants: variant names (None: all); the reference (vanilla 3d_fullres, seed 0) and ours (seed 0) are
            always run.
        raw: nnUNet_raw folder (None: ``$nnUNet_raw``, else ``synth/nnUNet_raw`` in the run's working folder).
        preprocessed: an nnUNet_preprocessed folder whose ``ThrombusPlans`` to reuse (None: plan in this run).
        synthetic, preset, seed, n_test: generate a synthetic cohort of ``synthetic`` cases, ``n_test`` of them
            test cases, when the dataset is missing.
        command: the command line, written into the table file.
        jobs: independent rows run at once (1; more makes every timing include the others' load).
        resume: reuse every training/prediction step an earlier, interrupted run into ``out_dir`` finished (its
            recorded time and memory); the table then says so.
        progress: log each step.
    """

    dataset_id: int
    budget: str
    out_dir: Path
    variants: tuple[str, ...] | None = None
    raw: Path | None = None
    preprocessed: Path | None = None
    synthetic: int | None = None
    preset: str | None = None
    seed: int = 0
    n_test: int | None = None
    command: str = ""
    jobs: int = 1
    resume: bool = False
    progress: bool = True


def run_benchmark(request: BenchmarkRequest) -> list[dict]:
    """Train, predict and evaluate every variant of ``request``; writes the outputs of the module doc and returns
    the table rows."""
    r, b = request, get_budget(request.budget)
    out = Path(r.out_dir)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    selected = select_variants(r.variants)  # unknown names fail before any work
    raw, name = prepare_data(r.raw, work, r.dataset_id, b, r.synthetic, r.preset, r.seed, r.progress,
                             n_test=r.n_test)
    ws = NnunetWorkspace.under(work, raw=raw)
    if r.preprocessed is not None:
        ws.preprocessed = Path(r.preprocessed)
    plans_note = ensure_plans(ws, r.dataset_id, name, b, vessel=any(v.plans == VESSEL_PLANS for v in selected))
    if r.progress:
        logger.info(f"{name}: {plans_note}; {b.describe()}")
    results = train_and_predict(ws, r.dataset_id, name, b, out, r.variants, r.progress, jobs=r.jobs,
                                resume=r.resume)
    rows, steps, cases, subgroups = _evaluate_rows(results, raw / name, out)
    seed_spread = add_comparisons(rows, cases, OURS, SEED_PAIRS)
    add_ratios(rows, REFERENCE)
    elapsed = time.perf_counter() - t_start
    md = to_markdown(rows, _header(r, b, name, rows, plans_note, elapsed), subgroups, seed_spread,
                     ours_label=next((row["label"] for row in rows if row["variant"] == OURS), OURS))
    write_csv(out / "benchmark.csv", rows, COLUMNS)
    write_csv(out / "subgroups.csv", subgroups, SUBGROUP_COLUMNS)
    write_text(out / "benchmark.md", md)
    write_json(out / "benchmark.json", {"budget": asdict(b), "dataset": name, "command": r.command, "rows": rows,
                                        "subgroups": subgroups, "seed_spread": seed_spread, "steps": steps,
                                        "plans": plans_note, "elapsed_s": elapsed, "jobs": r.jobs,
                                        "resume": r.resume,
                                        "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED}})
    logger.info(f"benchmark table written to {out / 'benchmark.md'}")
    return rows


def _evaluate_rows(results: dict, dataset: Path, out: Path) -> tuple[list, dict, dict, list]:
    """Evaluate every row's test masks against ``dataset/labelsTs``. Returns the rows (accuracy, evidence and cost
    columns), each row's subprocess costs, its per-case metrics and its subgroup rows."""
    ref_dir, meta = dataset / "labelsTs", dataset / "metadata.csv"
    rows, steps, cases, subgroups = [], {}, {}, []
    for vname, (variant, cost, pred_dir) in results.items():
        ev_dir = out / "evaluation" / vname
        reports = pred_dir.parent / f"{vname}_reports" if variant.thrombus_predict else None
        options = EvaluationOptions(metadata_csv=meta if meta.is_file() else None, reports_dir=reports, plots=False)
        summary = evaluate_folder(pred_dir, ref_dir, ev_dir, options, quiet=True)
        case_rows = read_case_rows(ev_dir / "metrics.csv")
        fp = false_positive_folder(pred_dir, ref_dir, [row["case"] for row in case_rows])
        for row in case_rows:
            row["fp_components"] = fp[row["case"]]
        cases[vname] = case_rows
        subgroups += subgroup_rows(vname, case_rows)
        rows.append({"variant": vname, "label": variant.label, "trainer": variant.trainer, "plans": variant.plans,
                     "seed": variant.seed, **accuracy_columns(summary, case_rows, fp), **evidence(summary),
                     **cost_columns(cost, summary["n_cases"])})
        steps[vname] = {"train": [asdict(st) for st in cost.train_steps],
                        "predict": [asdict(st) for st in cost.predict_steps], "epoch_seconds": cost.epoch_seconds}
    return rows, steps, cases, subgroups


def _header(r: BenchmarkRequest, b, name: str, rows: list, plans_note: str, elapsed: float) -> list[str]:
    """The Markdown table's header: command, budget, cohort, machine, and how every column was measured."""
    return [f"# Benchmark ({b.name} budget): {name}", "",
            f"Command: `{r.command or f'nnunet_thrombus benchmark -d {r.dataset_id} --budget {b.name}'}`", "",
            f"{b.describe()}; {rows[0]['n_test']} test cases ({rows[0]['n_with_clot']} with a clot, "
            f"{rows[0]['n_clot_free']} clot-free); {plans_note.split(' /')[0]}.",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared), {platform.python_version()}; "
            f"whole run {elapsed / 60:.1f} min.", "",
            "Dice/HD95/ASSD over cases with a reference thrombus; volume/length r = Pearson; LVO over all test "
            "cases. Training s/epoch = nnU-Net's logged epoch time summed over the stages; inference s/case = "
            "wall time of the row's prediction calls / cases, process start-up included (vanilla rows and the "
            "our-loss row: nnUNetv2_predict, both stages for the cascade; our cascades: nnunet_thrombus predict "
            "--no-roi, which also writes report.json and overlay.png per case); "
            "peak = max resident memory of the subprocesses. Ratios are to vanilla nnU-Net 3d_fullres (seed 0), "
            f"measured in the same run. Bootstrap CIs: percentile method, {BOOTSTRAP_RESAMPLES} resamples of the "
            f"cases, numpy seed {BOOTSTRAP_SEED}. Every row trained with its seed (nnunet_thrombus train --seed)."
            + (f" Rows ran {r.jobs} at a time, so every timing includes the others' load." if r.jobs > 1 else "")
            + (" Resumed run (--resume): steps an earlier, interrupted run finished kept their recorded costs, and "
               "the whole-run time counts only the last run." if r.resume else "")]
