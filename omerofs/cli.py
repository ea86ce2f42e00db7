"""``omerofs``: the command line. Subcommands import their modules lazily so
``omerofs --help`` works without Ice or FUSE."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="omerofs", description="Mount OMERO plates as TIFF files.")
    p.add_argument("--version", action="version", version=f"omerofs {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    from .devserver import cli as devserver_cli

    d = sub.add_parser("devserver", help="run the OMERO stand-in (tests, demo)")
    devserver_cli.add_arguments(d)
    d.set_defaults(run=devserver_cli.run)

    args = p.parse_args(argv)
    if not getattr(args, "run", None):
        p.print_help(sys.stderr)
        return 2
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
