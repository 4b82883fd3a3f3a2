"""``nnunet_thrombus env``: print the shell lines that let the plain ``nnUNetv2_*`` commands find our trainer.

Use: ``eval "$(nnunet_thrombus env)"``. Prints ``export nnUNet_extTrainer=...`` (our trainer folder prepended to what
is already set) and, when given, the three nnU-Net data folders.
"""
import shlex


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("env", description=__doc__, help="print the environment for nnUNetv2_* commands")
    p.add_argument("--raw", default=None, help="nnUNet_raw folder to export (default: leave as is)")
    p.add_argument("--preprocessed", default=None, help="nnUNet_preprocessed folder to export (default: leave as is)")
    p.add_argument("--results", default=None, help="nnUNet_results folder to export (default: leave as is)")
    p.add_argument("--cpu", action="store_true",
                   help="also export the CPU settings every nnUNetv2_* command accepts: nnUNet_compile=f, "
                        "nnUNet_n_proc_DA=1 (default: off)")
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    from nnunet_thrombus.nnunet_env import CPU_SETTINGS, ext_trainer_value

    lines = {"nnUNet_extTrainer": ext_trainer_value(os.environ.get("nnUNet_extTrainer"))}
    for key, value in (("nnUNet_raw", args.raw), ("nnUNet_preprocessed", args.preprocessed),
                       ("nnUNet_results", args.results)):
        if value:
            lines[key] = os.path.abspath(value)
    if args.cpu:
        lines.update(CPU_SETTINGS)
    for key, value in lines.items():
        # deliberate stdout, also under -q: these lines are the command's whole output, for eval "$(...)"
        print(f"export {key}={shlex.quote(value)}")
    return 0
