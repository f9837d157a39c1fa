"""One module per ``streamtsm`` subcommand (see ``streamtsm/cli.py``)."""
