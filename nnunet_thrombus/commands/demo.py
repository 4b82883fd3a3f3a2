"""``nnunet_thrombus demo``: the whole pipeline on a synthetic cohort, on a CPU, in about 20 minutes."""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", description=__doc__,
                              help="synthetic cohort -> convert -> train coarse + fine -> predict -> evaluate")
    p.add_argument("-o", "--output", default="demo_output", help="output folder, must be empty (default: demo_output)")
    p.add_argument("-b", "--budget", type=float, default=None,
                   help="wall-clock budget in minutes on 2 CPU cores; sets the training schedule (default: 20, "
                        "about 780 iterations for the fine stage and the baseline, 310 for the coarse stage; under "
                        "about 16 the models train too little to find clots)")
    p.add_argument("-n", "--cases", type=int, default=24, help="synthetic cases (default: 24)")
    p.add_argument("-t", "--test-cases", type=int, default=6, help="held-out test cases (default: 6)")
    p.add_argument("-s", "--seed", type=int, default=0, help="cohort seed (default: 0)")
    p.add_argument("--no-baseline", action="store_true", help="skip the vanilla nnU-Net baseline (default: run it)")
    p.add_argument("--preset", default="demo", choices=["tiny", "demo"],
                   help="synthetic head preset; tiny is for quick checks (default: demo)")
    p.add_argument("-device", "--device", default=None, choices=["cpu", "cuda"],
                   help="torch device for training and prediction (default: cuda when available, else cpu; the "
                        "choice is printed)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="errors only, as the global -q (the summary is still written to OUT/summary.json; default: "
                        "progress lines and the summary table)")
    p.set_defaults(func=run)


def run(args) -> int:
    from nnunet_thrombus.console import print_result
    from nnunet_thrombus.demo import DEFAULT_BUDGET_MINUTES, format_summary, run_demo
    from nnunet_thrombus.nnunet_env import announce_device

    device = announce_device(args.device, quiet=args.quiet)
    budget = DEFAULT_BUDGET_MINUTES if args.budget is None else args.budget
    summary = run_demo(args.output, budget_minutes=budget, n_cases=args.cases, n_test=args.test_cases,
                       seed=args.seed, baseline=not args.no_baseline, device=device, quiet=args.quiet,
                       preset=args.preset)
    print_result(format_summary(summary))
    return 0
