"""The ``kitesaga`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from actors.cli._control import add_control_parsers
from actors.cli._login import add_login_parsers
from actors.cli._repl import add_repl_parser
from actors.cli._report import add_report_parser
from actors.cli._run import add_run_parser
from actors.cli._sim import add_sim_parser
from actors.config import ConfigError
from actors.journal import JournalError

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="kitesaga", description="Actor-based trading engine for Zerodha Kite Connect.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_parser(sub)
    add_sim_parser(sub)
    add_login_parsers(sub)
    add_control_parsers(sub)
    add_report_parser(sub)
    add_repl_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"kitesaga: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except JournalError as exc:  # foreign, corrupt, newer or other-mode: refused, untouched
        print(f"kitesaga: journal refused: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"kitesaga: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
