"""Training seconds per iteration of the fine stage, global vs per-patch coarse context, as ratios to vanilla nnU-Net.

On a planned, preprocessed dataset with a trained stage 1 (e.g. the demo's ``DIR/work``), one run trains, in turn
and with the same short schedule (``nnunet_thrombus train`` flags; AdamW, no mirroring, one epoch):

- vanilla nnU-Net 3d_fullres (``nnUNetTrainer_envSchedule``, PlainConvUNet) on the same plans;
- ours, fine stage with the per-patch coarse branch (``ThrombusCascadeTrainer_patchContext``, the former default);
- ours, fine stage with the global coarse context (``ThrombusCascadeTrainer``).

Each trains in a scratch copy of the results folder (the stage-1 folder is copied in), so the dataset's own models
are untouched. Seconds per iteration come from nnU-Net's ``Epoch time`` (training iterations plus the validation
iterations; the same counts for all three). For the global context the log also says how long the one-off
whole-case coarse passes took (they are cached after the first use of each case). Printed side by side, as ratios
to vanilla.

Usage::

    python benchmarks/fine_stage_speed.py -w DEMO_DIR/work -d 501 --iters 30
"""
from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from pathlib import Path

from nnunet_thrombus.model_folder import DEFAULT_PLANS, stage_identifier
from nnunet_thrombus.training.workflow import NnunetWorkspace, short_schedule, train

ROWS = (("vanilla 3d_fullres", "nnUNetTrainer_envSchedule", "3d_fullres"),
        ("ours, per-patch coarse (old)", "ThrombusCascadeTrainer_patchContext", "3d_cascade_fullres"),
        ("ours, global coarse context (new)", "ThrombusCascadeTrainer", "3d_cascade_fullres"))


def _epoch_seconds(log: Path) -> float:
    times = [float(t) for t in re.findall(r"Epoch time: ([0-9.]+) s", log.read_text())]
    if not times:
        raise RuntimeError(f"no 'Epoch time' in {log}")
    return times[-1]


def measure(work: Path, dataset_id: int, iters: int, val_iters: int, plans: str, stage1_trainer: str) -> list[dict]:
    src = NnunetWorkspace(raw=work / "nnUNet_raw", preprocessed=work / "nnUNet_preprocessed",
                          results=work / "nnUNet_results", log_dir=work / "logs")
    dataset = next(p.name for p in src.preprocessed.glob(f"Dataset{dataset_id:03d}_*"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="fine_speed_") as tmp:
        ws = NnunetWorkspace(raw=src.raw, preprocessed=src.preprocessed, results=Path(tmp) / "results",
                             log_dir=Path(tmp) / "logs")
        ws.results.mkdir()
        ws.log_dir.mkdir()
        stage1 = stage_identifier(stage1_trainer, plans, "3d_lowres")
        shutil.copytree(src.results / dataset / stage1, ws.results / dataset / stage1)
        for name, trainer, config in ROWS:
            train(ws, dataset_id, config, 0, trainer, plans, short_schedule(1, iters, val_iters, optimizer="adamw"))
            folder = ws.results / dataset / stage_identifier(trainer, plans, config) / "fold_0"
            log = sorted(folder.glob("training_log_*.txt"))[-1]
            text = log.read_text()
            ctx = re.findall(r"coarse contexts: (\d+) whole-case passes in ([0-9.]+) s", text)
            rows.append({"model": name, "trainer": trainer, "epoch_s": _epoch_seconds(log),
                         "s_per_iter": _epoch_seconds(log) / (iters + val_iters),
                         "context_passes": int(ctx[-1][0]) if ctx else 0,
                         "context_s": float(ctx[-1][1]) if ctx else 0.0})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-w", "--work", required=True, type=Path,
                    help="folder holding nnUNet_raw, nnUNet_preprocessed, nnUNet_results (a demo's DIR/work). Required.")
    ap.add_argument("-d", "--dataset", type=int, default=501, help="dataset id. Default: 501.")
    ap.add_argument("--iters", type=int, default=30, help="training iterations per model. Default: 30.")
    ap.add_argument("--val-iters", type=int, default=2, help="validation iterations. Default: 2.")
    ap.add_argument("-p", "--plans", default=DEFAULT_PLANS, help=f"plans name. Default: {DEFAULT_PLANS}.")
    ap.add_argument("--stage1-trainer", default="ThrombusCascadeTrainer",
                    help="trainer whose 3d_lowres model is stage 1. Default: ThrombusCascadeTrainer.")
    args = ap.parse_args(argv)
    from nnunet_thrombus.console import configure_logging

    configure_logging()  # progress lines on stderr; the results below are this script's stdout
    rows = measure(args.work, args.dataset, args.iters, args.val_iters, args.plans, args.stage1_trainer)
    base = rows[0]["s_per_iter"]
    print(f"fine-stage training, {args.iters} + {args.val_iters} iterations each, one epoch (SYNTHETIC data)")
    for r in rows:
        extra = (f"  (of which {r['context_passes']} whole-case coarse passes: {r['context_s']:.1f} s, once per case)"
                 if r["context_passes"] else "")
        print(f"{r['model']:36s} {r['s_per_iter']:.2f} s/it  ratio to vanilla {r['s_per_iter'] / base:.2f}{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
