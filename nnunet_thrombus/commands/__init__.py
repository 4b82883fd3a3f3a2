"""Subcommands of ``nnunet_thrombus``: one module each with ``add_parser(subparsers)`` and ``run(args)``.

Modules here import only argparse at top level; heavy libraries are imported inside ``run``.
"""
