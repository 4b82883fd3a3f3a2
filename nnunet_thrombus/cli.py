"""The ``nnunet_thrombus`` command.

Each subcommand lives in ``nnunet_thrombus/commands/<name>.py`` and exposes two functions:
``add_parser(subparsers)`` (argparse only, no heavy imports) and ``run(args) -> int``
(imports torch / nnU-Net / SimpleITK inside, calls one library function, returns an exit code).
This file only collects them, so ``--help`` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from nnunet_thrombus import __version__

logger = logging.getLogger(__name__)


def _command_modules():
    import nnunet_thrombus.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        yield importlib.import_module(f"nnunet_thrombus.commands.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnunet_thrombus",
        description="Coarse-to-fine intracranial thrombus segmentation on NCCT + CTA (nnU-Net v2 plugin).",
        epilog="Progress, warnings and errors are logged to stderr (HH:MM:SS message); a result a command prints "
               "(evaluate's table, env's export lines) goes to stdout. -v and -q go before the command: "
               "nnunet_thrombus -q predict ... (a command's own -q means the same as the global one).",
    )
    parser.add_argument("--version", action="version", version=f"nnunet_thrombus {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", dest="log_verbose", action="store_true",
                           help="also debug records, with the module that wrote them. Default: progress (INFO).")
    verbosity.add_argument("-q", "--quiet", dest="log_quiet", action="store_true",
                           help="errors only: no progress, no warnings, no result tables (env still prints its "
                                "export lines). Default: progress (INFO).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in _command_modules():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # a command's own -q/--quiet (predict, evaluate, synth, ...) means the same as the global one, and the global
    # one reaches the commands that read args.quiet (progress bars, per-case lines)
    quiet = args.log_quiet or getattr(args, "quiet", False)
    if quiet and hasattr(args, "quiet"):
        args.quiet = True
    from nnunet_thrombus.console import configure_logging, level_from_flags

    configure_logging(level_from_flags(verbose=args.log_verbose, quiet=quiet))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        logger.error("interrupted by the user (Ctrl-C); finished outputs are kept, partial ones were not written")
        return 130


if __name__ == "__main__":
    sys.exit(main())
