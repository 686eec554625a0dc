"""The ``medviewer`` command.

``medviewer [PATH]`` opens the viewer; subcommands work without a display:
``info``, ``convert``, ``screenshot``, ``infer``, ``train``, ``db``. Errors a user can cause
print one line and exit with code 2 (never a traceback).
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from medviewer import __version__
from medviewer.core.errors import MedviewerError

EXIT_USER_ERROR = 2

# name -> (help, function adding arguments, function running the command)
Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
COMMANDS: dict[str, Command] = {}


def command(name: str, help_text: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register a subcommand; the decorated function runs it and returns an exit code."""

    def register(run: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = (help_text, add_arguments, run)
        return run

    return register


# ---------------------------------------------------------------------------- gui
def _gui_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", help="file or folder to open (DICOM folder, NIfTI, NRRD, MHA, PNG...)")
    parser.add_argument("--demo", action="store_true", help="open the built-in demo study")
    parser.add_argument("--layout", choices=["1x1", "1x3", "2x2", "3d"], help="initial view layout")


def run_gui(args: argparse.Namespace) -> int:
    from medviewer.ui.app import run_app  # imported late: Qt is only needed for the GUI

    return run_app(path=args.path, demo=args.demo, layout=args.layout)


# ---------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medviewer", description="CT, MR and X-ray viewer with AI-assisted annotation")
    parser.add_argument("--version", action="version", version=f"medviewer {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_arguments, _run) in COMMANDS.items():
        add_arguments(subparsers.add_parser(name, help=help_text, description=help_text))
    return parser


def _load_commands() -> None:
    """Import the modules that register subcommands (kept separate so each stays small)."""
    import medviewer.commands  # noqa: F401


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _load_commands()
    try:
        if argv and argv[0] in COMMANDS:
            args = build_parser().parse_args(argv)
            return COMMANDS[args.command][2](args)
        if argv and argv[0] in ("-h", "--help", "--version"):
            build_parser().parse_args(argv)
            return 0
        gui_parser = argparse.ArgumentParser(prog="medviewer", description="Open the viewer (see also: medviewer --help)")
        _gui_arguments(gui_parser)
        return run_gui(gui_parser.parse_args(argv))
    except MedviewerError as error:
        print(f"medviewer: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("medviewer: interrupted", file=sys.stderr)
        return 130
