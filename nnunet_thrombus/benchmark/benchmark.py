"""``run_benchmark``: data -> plans -> train/predict every variant -> evaluate -> one table (CSV + Markdown).

Outputs in ``out_dir``: ``benchmark.csv`` (columns of :mod:`nnunet_thrombus.benchmark.table`), ``benchmark.md``
(the same as two Markdown tables, headed by the command and the budget), ``benchmark.json`` (rows plus every
subprocess's cost), ``predictions/<variant>/``, ``evaluation/<variant>/`` and nnU-Net logs under ``work/logs``.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

from nnunet_thrombus.benchmark.budgets import REFERENCE, get_budget
from nnunet_thrombus.benchmark.table import COLUMNS, accuracy_columns, add_ratios, cost_columns, to_markdown


def run_benchmark(dataset_id: int, budget: str, out_dir, variants=None, raw=None, preprocessed=None,
                  synthetic: int | None = None, preset: str | None = None, seed: int = 0, command: str = "",
                  progress: bool = True) -> list[dict]:
    """Train, predict and evaluate every variant under ``budget``; returns the table rows.

    Args:
        dataset_id: nnU-Net dataset id.
        budget: ``smoke``, ``cpu`` or ``gpu`` (see :mod:`nnunet_thrombus.benchmark.budgets`).
        out_dir: output folder; nnU-Net's preprocessed/results folders go to ``out_dir/work``.
        variants: variant names (default: all); the reference ``vanilla_3d_fullres`` is always run.
        raw: nnUNet_raw folder (default: ``$nnUNet_raw``, else ``out_dir/work/synth/nnUNet_raw``).
        preprocessed: an nnUNet_preprocessed folder whose ``ThrombusPlans`` to reuse (default: plan in this run).
        synthetic, preset, seed: generate a synthetic cohort of ``synthetic`` cases when the dataset is missing.
        command: the command line, written into the table file.
    """
    from nnunet_thrombus.evaluation.atomic_io import write_csv, write_json, write_text
    from nnunet_thrombus.evaluation.evaluate import evaluate_folder
    from nnunet_thrombus.benchmark.runner import ensure_plans, prepare_data, train_and_predict
    from nnunet_thrombus.training.workflow import NnunetWorkspace

    b = get_budget(budget)
    out = Path(out_dir)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    raw, name = prepare_data(raw, work, dataset_id, b, synthetic, preset, seed, progress)
    ws = NnunetWorkspace.under(work, raw=raw)
    if preprocessed is not None:
        ws.preprocessed = Path(preprocessed)
    plans_note = ensure_plans(ws, dataset_id, name, b)
    if progress:
        print(f"{name}: {plans_note}; {b.describe()}", flush=True)
    results = train_and_predict(ws, dataset_id, name, b, out, variants, progress)
    ref_dir = raw / name / "labelsTs"
    meta = raw / name / "metadata.csv"
    rows, steps = [], {}
    for vname, (variant, cost, pred_dir) in results.items():
        summary = evaluate_folder(pred_dir, ref_dir, out / "evaluation" / vname,
                                  metadata_csv=meta if meta.is_file() else None, plots=False, quiet=True)
        rows.append({"variant": vname, "label": variant.label, "trainer": variant.trainer,
                     **accuracy_columns(summary), **cost_columns(cost, summary["n_cases"])})
        steps[vname] = {"train": [asdict(s) for s in cost.train_steps],
                        "predict": [asdict(s) for s in cost.predict_steps], "epoch_seconds": cost.epoch_seconds}
    add_ratios(rows, REFERENCE)
    elapsed = time.perf_counter() - t_start
    header = [f"# Benchmark ({b.name} budget): {name}", "",
              f"Command: `{command or f'nnunet_thrombus benchmark -d {dataset_id} --budget {b.name}'}`", "",
              f"{b.describe()}; {rows[0]['n_test']} test cases; {plans_note.split(' /')[0]}.",
              f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared), {platform.python_version()}; "
              f"whole run {elapsed / 60:.1f} min.", "",
              "Dice/HD95/ASSD over cases with a reference thrombus; volume/length r = Pearson; LVO over all test "
              "cases. Training s/epoch = nnU-Net's logged epoch time summed over the stages; inference s/case = "
              "wall time of nnUNetv2_predict (both stages for cascades) / cases, process start-up included; "
              "peak = max resident memory of the subprocesses. Ratios are to vanilla nnU-Net 3d_fullres, "
              "measured in the same run."]
    write_csv(out / "benchmark.csv", rows, COLUMNS)
    write_text(out / "benchmark.md", to_markdown(rows, header))
    write_json(out / "benchmark.json", {"budget": asdict(b), "dataset": name, "command": command, "rows": rows,
                                        "steps": steps, "plans": plans_note, "elapsed_s": elapsed})
    if progress:
        print(to_markdown(rows, header), flush=True)
    return rows
