"""``kitesaga repl``: a Python prompt on a running engine (see :mod:`actors.repl`)."""

from __future__ import annotations

import argparse
from typing import Any

from actors.cli._control import common_flags
from actors.cli._flags import configure

__all__ = ["add_repl_parser"]

_FLAG_KEYS = {"state_dir": "KITESAGA_ENGINE_STATE_DIR"}


def add_repl_parser(sub: Any) -> None:
    """Register ``kitesaga repl`` and its flags."""
    p = sub.add_parser(
        "repl", help="a Python prompt on the running engine: actors, sagas, prices, trace, "
        "ask; read-only unless --allow-write; every command is audited",
        description="Attach to the running engine over its control socket. Interactive at a "
        "terminal; otherwise runs the Python statements on stdin (exit 0 if all succeeded, "
        "1 if any failed). help() lists the built-ins.")
    common_flags(p)
    p.add_argument("--allow-write", action="store_true",
                   help="allow halt(), resume(), and ask()/tell() of messages that change "
                   "the engine")
    p.add_argument("--yes", action="store_true",
                   help="confirm dangerous commands without asking (the only way to send "
                   "them when stdin is not a terminal)")
    p.add_argument("--json", action="store_true",
                   help="show each result's data as one JSON line (for scripts)")
    p.set_defaults(func=_repl)


def _repl(args: argparse.Namespace) -> int:
    from actors.repl import run_repl  # only this command needs the REPL (prompt_toolkit)

    config = configure(args, _FLAG_KEYS)
    return run_repl(config, allow_write=args.allow_write, yes=args.yes,
                    json_output=args.json)
