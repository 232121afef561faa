"""The ``pmviz`` command line: one module per subcommand, each with ``add_arguments`` and ``run``.

This is the only layer that prints or exits; library errors become one-line messages here.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import Error

# name -> (module, one-line help). Modules load only when their subcommand runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": (
        "pmviz.cli.doctor",
        "show which kernel features and write-tracking mechanisms this machine offers",
    ),
    "scan": ("pmviz.cli.scan", "scan a process once and print its regions (table or JSON)"),
    "record": ("pmviz.cli.record", "record a process (or a command) into a NAME.pmviz capture"),
    "info": ("pmviz.cli.info", "summarise a capture"),
    "anonymize": (
        "pmviz.cli.anonymize",
        "rebase addresses and strip paths so a capture can be shared",
    ),
    "heatmap": ("pmviz.cli.heatmap", "render a capture's address-space heatmap to an image"),
    "report": ("pmviz.cli.report", "write a self-contained HTML report of a capture"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pmviz", description="See how a Linux process uses its address space (PAGEMAP_SCAN)."
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"pmviz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, helptext) in COMMANDS.items():
        sub.add_parser(name, help=helptext, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = build_parser()
    if not argv or argv[0] not in COMMANDS:
        top.parse_args(argv or ["--help"])  # prints help / version / the usage error and exits
        return 2
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"pmviz {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except Error as err:
        print(f"pmviz {name}: error: {err}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as err:  # the library's bad-argument errors (say which)
        print(f"pmviz {name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pmviz {name}: interrupted", file=sys.stderr)
        return 130
