"""``nnunet_thrombus benchmark``: vanilla nnU-Net vs our cascade and its ablations, one budget, one table."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    from nnunet_thrombus.benchmark.budgets import BUDGETS, VARIANTS

    p = subparsers.add_parser(
        "benchmark", help="train + evaluate vanilla nnU-Net, our cascade and ablations under one budget",
        description="Train (fold 0, same plans, same short schedule, fixed seeds), predict the test images and "
                    "evaluate: vanilla nnU-Net 3d_fullres (two seeds) and cascade, ours (two seeds) with global or "
                    "patch-local coarse context, its ablations, PlainConvUNet with our loss, and ours with the vessel "
                    "CT window. Writes benchmark.csv/.md/.json and subgroups.csv to OUT: medians with bootstrap CIs, "
                    "Wilson CIs, paired differences with ours (bootstrap CI, Wilcoxon p), subgroups, seed spread, "
                    "and every timing as a ratio to vanilla 3d_fullres (docs/benchmark.md).")
    p.add_argument("-d", "--dataset", type=int, required=True, help="nnU-Net dataset id. Required.")
    p.add_argument("-b", "--budget", choices=sorted(BUDGETS), default="smoke",
                   help="data/plans/schedule budget (see docs/benchmark.md). Default: smoke.")
    p.add_argument("-o", "--output", default="benchmark_out", help="output folder. Default: benchmark_out.")
    p.add_argument("-v", "--variants", nargs="+", choices=list(VARIANTS), default=None, metavar="NAME",
                   help=f"variants to run, of: {', '.join(VARIANTS)} (vanilla_3d_fullres_seed0 and ours_seed0 are "
                        f"always added). Default: all.")
    p.add_argument("-r", "--raw", default=None, help="nnUNet_raw folder. Default: $nnUNet_raw.")
    p.add_argument("--preprocessed", default=None,
                   help="nnUNet_preprocessed folder whose ThrombusPlans to reuse. Default: plan in OUT/work.")
    p.add_argument("-s", "--synthetic", type=int, default=None,
                   help="if the dataset is missing, generate a synthetic cohort of N cases. Default: off.")
    p.add_argument("-t", "--test", type=int, default=None, metavar="M",
                   help="with --synthetic: M of the N cases are test cases (clots at every site, isodense and small "
                        "clots, clot-free heads with calcified arteries). Default: the budget's (cpu 40).")
    p.add_argument("-p", "--preset", choices=("tiny", "demo", "paper"), default=None,
                   help="synthetic geometry preset. Default: the budget's (smoke tiny, cpu demo, gpu paper).")
    p.add_argument("--seed", type=int, default=0, help="synthetic cohort seed. Default: 0.")
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="rows (chains of rows sharing a stage 1) to run at once; above 1 the timings include each "
                        "other's load. Default: 1.")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run into the same OUT: steps it finished are not run again and keep "
                        "their recorded time and memory (the whole-run time then counts only this run). Default: off.")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="errors only, as the global -q (the table is still written to OUT). Default: off.")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    if args.test is not None and args.synthetic is None:
        raise SystemExit("benchmark: --test M needs --synthetic N (the size of the cohort to generate)")
    if args.jobs < 1:
        raise SystemExit(f"benchmark: --jobs must be >= 1, got {args.jobs}")
    import shlex
    import sys
    from pathlib import Path

    from nnunet_thrombus.benchmark.benchmark import BenchmarkRequest, run_benchmark
    from nnunet_thrombus.console import print_result

    run_benchmark(BenchmarkRequest(
        args.dataset, args.budget, Path(args.output), variants=tuple(args.variants) if args.variants else None,
        raw=args.raw, preprocessed=args.preprocessed, synthetic=args.synthetic, preset=args.preset, seed=args.seed,
        n_test=args.test, jobs=args.jobs, resume=args.resume,
        command=" ".join(["nnunet_thrombus"] + [shlex.quote(a) for a in sys.argv[1:]]), progress=not args.quiet))
    print_result((Path(args.output) / "benchmark.md").read_text())
    return 0
