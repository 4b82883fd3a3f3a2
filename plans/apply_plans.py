"""Script form of ``nnunet_thrombus apply-plans``: ``python plans/apply_plans.py -d 501 --preset paper``.

The JSON files beside this script are copies, for readers, of the presets the package ships and reads
(``nnunet_thrombus/presets/``); a test keeps them equal. Editing them here changes nothing.
"""
import sys

from nnunet_thrombus.commands.apply_plans import standalone_main

if __name__ == "__main__":
    sys.exit(standalone_main(sys.argv[1:]))
