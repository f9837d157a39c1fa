"""The ``streamtsm`` command. Each subcommand lives in ``streamtsm/commands/<name>.py``.

A command module provides ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``. Command modules import their heavy dependencies inside ``func``, so
parsing arguments is fast and the torch-free runtime (demo with an ONNX model) never imports
torch.

Exit codes: 0 done, 1 a user error (one line on stderr), 2 bad arguments, 130 Ctrl-C, 141 the
reader of stdout went away (``streamtsm info --json | head -1``): as a Unix tool killed by
SIGPIPE, the command stops quietly instead of printing a BrokenPipeError traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from . import __version__

# Order here is the order in --help.
COMMANDS = ("demo", "info", "models", "download", "export", "build_engine", "bench", "record", "train", "eval", "triton",
            "triton_setup", "triton_client")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamtsm",
        description=(
            "Online streaming action recognition: an online TSM runs one 2D-CNN pass per webcam frame and "
            "carries the shifted channels of each residual block to the next frame. Subcommands run the demo, "
            "inspect and export checkpoints, build TensorRT engines, train on your own clips and benchmark "
            "against 3D-CNN baselines."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"streamtsm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"streamtsm.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return _main(argv)


def run_command(command: str, argv: list[str] | None = None, *, prog: str) -> int:
    """Run one command as a program of its own: ``python demo.py ...`` is ``streamtsm demo ...``,
    but its usage line and argument errors say ``usage: demo.py ...``. ``-v``/``--verbose`` is
    taken as the top-level flag."""
    return _main(argv, command=command, prog=prog)


def _main(argv: list[str] | None, **standalone: str) -> int:
    try:
        try:
            return _run(argv, **standalone)
        finally:  # also after --help/--version (SystemExit): a reader that left shows up here, not at exit
            sys.stdout.flush()
    except BrokenPipeError:
        return _stdout_closed()


def _command_parser(parser: argparse.ArgumentParser, command: str, prog: str) -> argparse.ArgumentParser:
    """The parser of one command, renamed ``prog`` and given the top-level -v/--verbose."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = commands.choices[command]
    sub.prog = prog
    sub.add_argument("-v", "--verbose", action="store_true", help="log debug messages, show OpenCV's warnings and tracebacks")
    return sub


def _run(argv: list[str] | None, *, command: str | None = None, prog: str | None = None) -> int:
    parser = build_parser()
    if command is not None:
        parser = _command_parser(parser, command, prog or command)
    args, extra = parser.parse_known_args(argv)
    if extra:  # said with the command's usage (`usage: streamtsm demo ...`), not the list of commands
        commands = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        owner = commands.choices.get(args.command, parser) if commands is not None else parser
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    if not args.verbose:
        _quiet_opencv()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # user-facing errors: one clear line, not a traceback
        if args.verbose or not _is_user_error(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _quiet_opencv() -> None:
    """Hide OpenCV's own warnings, which precede our one line on what went wrong and what to do
    ("[ WARN:0@0.2] global cap_ffmpeg_impl.hpp:1246 ... OpenCV should be configured with
    libavdevice" before "could not open camera index 7"); -v shows them, and a user's own
    OPENCV_LOG_LEVEL wins. FFmpeg's lines (the refused connection, "moov atom not found") stay:
    they name the cause."""
    if "OPENCV_LOG_LEVEL" in os.environ:
        return
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _stdout_closed() -> int:
    """stdout's reader is gone: point stdout at /dev/null so the final flush at exit cannot fail
    again, and exit as a process killed by SIGPIPE would (128 + 13)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (an embedding app replaced it)
        return 128 + 13
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    return 128 + 13


def _is_user_error(exc: Exception) -> bool:
    """Errors whose message already says what was wrong and what to do."""
    return isinstance(exc, (ValueError, FileNotFoundError, RuntimeError, KeyError)) and type(exc).__module__.startswith(
        ("streamtsm", "builtins")
    )


if __name__ == "__main__":
    sys.exit(main())
