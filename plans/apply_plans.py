"""Script form of ``nnunet_thrombus apply-plans``: ``python plans/apply_plans.py -d 501 --preset paper``."""
import sys

from nnunet_thrombus.commands.apply_plans import standalone_main

if __name__ == "__main__":
    sys.exit(standalone_main(sys.argv[1:]))
