"""Live demo: ``python demo.py --camera 0`` (see ``python demo.py --help``)."""

import sys

from streamtsm.cli import main

VERBOSE = ("-v", "--verbose")

if __name__ == "__main__":  # -v is the streamtsm command's flag: `python demo.py -v` means `streamtsm -v demo`
    args = sys.argv[1:]
    sys.exit(main([*(a for a in args if a in VERBOSE), "demo", *(a for a in args if a not in VERBOSE)]))
