"""The ``pmviz`` command line: one module per subcommand, each with ``add_arguments`` and ``run``.

This is the only layer that prints or exits; library errors become one-line messages here.
Exit status: 0 done; 1 a pmviz error (no such process, damaged capture, kernel feature
missing: the message says which); 2 bad arguments or an unusable file or directory named on
the command line; 130 interrupted; 141 the reader of our output went away (``| head``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any

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
    "slice": ("pmviz.cli.slice", "cut a capture to a time window and/or an address range"),
    "downsample": (
        "pmviz.cli.downsample",
        "keep every K-th snapshot or one per interval (written sets stay exact: unions)",
    ),
    "heatmap": ("pmviz.cli.heatmap", "render a capture's address-space heatmap to an image"),
    "report": ("pmviz.cli.report", "write a self-contained HTML report of a capture"),
    "fleet": ("pmviz.cli.fleet", "summaries, SQL and a report over many captures (pmviz[fleet])"),
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
        status = int(module.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except BrokenPipeError:
        _discard_stdout()
        return 128 + 13  # as if killed by SIGPIPE, without the traceback
    except Error as err:
        print(f"pmviz {name}: error: {err}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as err:  # the library's bad-argument errors (say which)
        print(f"pmviz {name}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file or directory the user named: unreadable, not writable
        where = f"{err.filename}: " if err.filename else ""
        print(f"pmviz {name}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pmviz {name}: interrupted", file=sys.stderr)
        return 130


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout already closed or not a real file
        pass


def check_parent(path: str) -> str:
    """The directory ``path`` would be created in; ValueError if it does not exist (it is not
    created: a typo would create a tree).
    """
    # relative, not absolute: a user may work in a directory whose ancestors it cannot search
    parent = os.path.dirname(os.path.normpath(path)) or "."
    if not os.path.isdir(parent):
        raise ValueError(f"{path}: the directory {os.path.abspath(parent)} does not exist")
    return parent


def check_output(path: str, overwrite: bool) -> None:
    """Refuse, before any work, an output path the command could not (or must not) replace.

    Raises
    ------
    ValueError
        The parent directory does not exist (it is not created: a typo would create a
        tree), ``path`` exists without ``overwrite``, or ``path`` belongs to another user.
    """
    check_parent(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not overwrite:
        raise ValueError(f"{path} already exists (add --overwrite to replace it)")
    if os.geteuid() != 0 and st.st_uid != os.geteuid():
        raise ValueError(
            f"{path} belongs to another user (uid {st.st_uid}); refusing to replace it"
        )


def add_pid_argument(parser: argparse.ArgumentParser) -> None:
    """``--pid N``: which process of a session (``pmviz record --follow-children``...)."""
    parser.add_argument(
        "--pid",
        type=int,
        metavar="N",
        help="with a session (several processes): the process to use (pmviz info lists them)",
    )


def open_capture_arg(path: str, pid: int | None = None, *, strict: bool = True) -> Any:
    """The capture a command works on: ``path``, or process ``pid`` of the session ``path``.

    Raises
    ------
    ValueError
        A session without ``pid`` (the message lists its processes), or ``pid`` with a
        single capture, or a pid the session did not record.
    """
    from ..storage import is_session, open_session
    from ..storage import open as open_capture

    if not is_session(path):
        if pid is not None:
            raise ValueError(f"{path} is a capture of one process: --pid goes with a session")
        return open_capture(path, strict=strict)
    session = open_session(path, strict=strict)
    if pid is None:
        pids = session.pids
        shown = ", ".join(map(str, pids[:12])) + (" ..." if len(pids) > 12 else "")
        raise ValueError(
            f"{path} is a session of {len(pids)} recorded processes ({shown}): give --pid N "
            "for one of them (pmviz info lists them)"
        )
    try:
        return session.capture(pid)
    except KeyError as err:
        raise ValueError(f"{path}: {err.args[0]}") from None
