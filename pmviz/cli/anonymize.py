"""``pmviz anonymize IN -o OUT``: rebase addresses and strip paths for sharing."""

from __future__ import annotations

import argparse
import sys

from ..anonymize import anonymize
from ..storage import is_session, save
from ..storage import open as open_capture
from . import check_output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="the capture or session to anonymize (NAME.pmviz)")
    parser.add_argument("-o", "--out", required=True, help="where to write the anonymized copy")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")


def run(args: argparse.Namespace) -> int:
    check_output(args.out, args.overwrite)
    if is_session(args.input):
        from ..storage.session_anonymize import anonymize_session

        anonymize_session(args.input, args.out, overwrite=args.overwrite)
        print(
            f"pmviz anonymize: wrote {args.out} (session: every capture anonymized, pids "
            "renumbered, commands reduced to program names, paths removed)",
            file=sys.stderr,
        )
        return 0
    cap = open_capture(args.input)
    save(anonymize(cap), args.out, overwrite=args.overwrite)
    print(
        f"pmviz anonymize: wrote {args.out} ({cap.n_snapshots} snapshots; addresses rebased, "
        "paths and command line removed)",
        file=sys.stderr,
    )
    return 0
