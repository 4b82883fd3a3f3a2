"""The ``nnunet_thrombus`` command.

Each subcommand lives in ``nnunet_thrombus/commands/<name>.py`` and exposes two functions:
``add_parser(subparsers)`` (argparse only, no heavy imports) and ``run(args) -> int``
(imports torch / nnU-Net / SimpleITK inside, calls one library function, returns an exit code).
This file only collects them, so ``--help`` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from nnunet_thrombus import __version__


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
    )
    parser.add_argument("--version", action="version", version=f"nnunet_thrombus {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in _command_modules():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted by the user (Ctrl-C); finished outputs are kept, partial ones were not written",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
