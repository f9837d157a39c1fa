"""Live demo: ``python demo.py --camera 0`` (see ``python demo.py --help``)."""

import sys

from streamtsm.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
