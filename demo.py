"""Live demo: ``python demo.py --camera 0`` (see ``python demo.py --help``): ``streamtsm demo``
as a program of its own (its usage and argument errors say ``demo.py``; ``-v`` logs debug messages)."""

import sys

from streamtsm.cli import run_command

if __name__ == "__main__":
    sys.exit(run_command("demo", sys.argv[1:], prog="demo.py"))
