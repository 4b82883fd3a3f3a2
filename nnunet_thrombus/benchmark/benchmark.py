"""``run_benchmark``: data -> plans -> train/predict every variant -> evaluate -> one table (CSV + Markdown).

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
from dataclasses import asdict
from pathlib import Path

from nnunet_thrombus.atomic_io import write_csv, write_json, write_text
from nnunet_thrombus.benchmark.budgets import OURS, REFERENCE, SEED_PAIRS, VESSEL_PLANS, get_budget, select_variants
from nnunet_thrombus.benchmark.case_metrics import false_positive_folder, read_case_rows
from nnunet_thrombus.benchmark.runner import ensure_plans, prepare_data, train_and_predict
from nnunet_thrombus.benchmark.table import (COLUMNS, SUBGROUP_COLUMNS, accuracy_columns, add_comparisons, add_ratios,
                                             cost_columns, evidence, subgroup_rows, to_markdown)
from nnunet_thrombus.evaluation.evaluate import evaluate_folder
from nnunet_thrombus.evaluation.statistics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from nnunet_thrombus.training.workflow import NnunetWorkspace

logger = logging.getLogger(__name__)


def run_benchmark(dataset_id: int, budget: str, out_dir, variants=None, raw=None, preprocessed=None,
                  synthetic: int | None = None, preset: str | None = None, seed: int = 0, command: str = "",
                  progress: bool = True, n_test: int | None = None, jobs: int = 1,
                  resume: bool = False) -> list[dict]:
    """Train, predict and evaluate every variant under ``budget``; returns the table rows.

    Args:
        dataset_id: nnU-Net dataset id.
        budget: ``smoke``, ``cpu`` or ``gpu`` (see :mod:`nnunet_thrombus.benchmark.budgets`).
        out_dir: output folder; nnU-Net's preprocessed/results folders go to ``out_dir/work``.
        variants: variant names (default: all); the reference (vanilla 3d_fullres, seed 0) and ours (seed 0) are
            always run.
        raw: nnUNet_raw folder (default: ``$nnUNet_raw``, else ``synth/nnUNet_raw`` in the run's working folder
            under ``out_dir``).
        preprocessed: an nnUNet_preprocessed folder whose ``ThrombusPlans`` to reuse (default: plan in this run).
        synthetic, preset, seed, n_test: generate a synthetic cohort of ``synthetic`` cases, ``n_test`` of them
            test cases, when the dataset is missing.
        command: the command line, written into the table file.
        jobs: independent rows run at once (default 1; more makes every timing include the others' load).
        resume: reuse every training/prediction step an earlier, interrupted run into ``out_dir`` finished (its
            recorded time and memory); the table then says so.
    """
    b = get_budget(budget)
    out = Path(out_dir)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    selected = select_variants(variants)  # unknown names fail before any work
    raw, name = prepare_data(raw, work, dataset_id, b, synthetic, preset, seed, progress, n_test=n_test)
    ws = NnunetWorkspace.under(work, raw=raw)
    if preprocessed is not None:
        ws.preprocessed = Path(preprocessed)
    plans_note = ensure_plans(ws, dataset_id, name, b, vessel=any(v.plans == VESSEL_PLANS for v in selected))
    if progress:
        logger.info(f"{name}: {plans_note}; {b.describe()}")
    results = train_and_predict(ws, dataset_id, name, b, out, variants, progress, jobs=jobs, resume=resume)
    ref_dir = raw / name / "labelsTs"
    meta = raw / name / "metadata.csv"
    rows, steps, cases, subgroups = [], {}, {}, []
    for vname, (variant, cost, pred_dir) in results.items():
        ev_dir = out / "evaluation" / vname
        reports = pred_dir.parent / f"{vname}_reports" if variant.thrombus_predict else None
        summary = evaluate_folder(pred_dir, ref_dir, ev_dir, metadata_csv=meta if meta.is_file() else None,
                                  plots=False, quiet=True, reports_dir=reports)
        case_rows = read_case_rows(ev_dir / "metrics.csv")
        fp = false_positive_folder(pred_dir, ref_dir, [r["case"] for r in case_rows])
        for r in case_rows:
            r["fp_components"] = fp[r["case"]]
        cases[vname] = case_rows
        subgroups += subgroup_rows(vname, case_rows)
        rows.append({"variant": vname, "label": variant.label, "trainer": variant.trainer, "plans": variant.plans,
                     "seed": variant.seed, **accuracy_columns(summary, case_rows, fp), **evidence(summary),
                     **cost_columns(cost, summary["n_cases"])})
        steps[vname] = {"train": [asdict(s) for s in cost.train_steps],
                        "predict": [asdict(s) for s in cost.predict_steps], "epoch_seconds": cost.epoch_seconds}
    seed_spread = add_comparisons(rows, cases, OURS, SEED_PAIRS)
    add_ratios(rows, REFERENCE)
    elapsed = time.perf_counter() - t_start
    header = [f"# Benchmark ({b.name} budget): {name}", "",
              f"Command: `{command or f'nnunet_thrombus benchmark -d {dataset_id} --budget {b.name}'}`", "",
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
              + (f" Rows ran {jobs} at a time, so every timing includes the others' load." if jobs > 1 else "")
              + (" Resumed run (--resume): steps an earlier, interrupted run finished kept their recorded costs, and "
                 "the whole-run time counts only the last run." if resume else "")]
    md = to_markdown(rows, header, subgroups, seed_spread,
                     ours_label=next((r["label"] for r in rows if r["variant"] == OURS), OURS))
    write_csv(out / "benchmark.csv", rows, COLUMNS)
    write_csv(out / "subgroups.csv", subgroups, SUBGROUP_COLUMNS)
    write_text(out / "benchmark.md", md)
    write_json(out / "benchmark.json", {"budget": asdict(b), "dataset": name, "command": command, "rows": rows,
                                        "subgroups": subgroups, "seed_spread": seed_spread, "steps": steps,
                                        "plans": plans_note, "elapsed_s": elapsed, "jobs": jobs, "resume": resume,
                                        "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED}})
    logger.info(f"benchmark table written to {out / 'benchmark.md'}")
    return rows
