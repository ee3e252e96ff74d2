"""``kitesaga repl``: a Python prompt attached to a running engine over its control
socket.

:func:`run_repl` is the whole public surface. The namespace holds every public name of
``messages`` and the built-ins (``help()`` lists them: ``actors()``, ``inspect()``,
``sagas()``, ``trace()``, ``ask()``, ``halt()``...), each one control request whose
reply comes back as a ``Result`` (its repr is text, ``.data`` the reply). The session
is read-only unless started with ``allow_write``; every command and its result go to
the audit log ``<state dir>/<repl.audit_file>`` (0600). See docs/operations.md.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from actors.config import Config, state_dir
from actors.control import ControlError
from actors.repl._builtins import ACTOR_ALIASES, make_namespace
from actors.repl._execute import Executor, run_scripted
from actors.repl._session import Session, state_file

__all__ = ["run_repl"]


def _banner(session: Session, status: dict[str, Any]) -> str:
    trading = status.get("trading") or {}
    state = f"{trading.get('state', '?')} ({trading.get('reason', '')})"
    if trading.get("draining"):
        state += ", STOPPING"
    mode = ("WRITE ENABLED: halt(), resume(), ask() and tell() change the engine"
            if session.allow_write else "read-only (start with --allow-write to change state)")
    return (f"kitesaga repl: {status.get('mode', '?')} engine at {state_dir(session.config)}, "
            f"trading {state}\n{mode}\nhelp() lists the built-ins; Tab completes; Ctrl-C "
            f"cancels; Ctrl-D exits; session {session.id} is audited")


def _actor_names(session: Session) -> list[str]:
    """Aliases, plus the engine's actor names when it tells them."""
    try:
        rows = session.request("actors", {}).get("actors") or []
    except ControlError:  # an engine without the command: the aliases still complete
        rows = []
    return [*ACTOR_ALIASES, *(str(r["name"]) for r in rows
                              if isinstance(r, dict) and "name" in r)]


def run_repl(config: Config, *, allow_write: bool, yes: bool, json_output: bool,
             stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Attach to the engine at ``config``'s state dir and run the REPL; the exit code.

    ``stdin`` a terminal: the interactive console (on the process's terminal), exit 0
    at Ctrl-D. Otherwise every statement of ``stdin`` runs in turn, no prompt: exit 0
    if all succeeded, 1 if any failed. ``yes`` confirms dangerous commands without
    asking (the only way to send them from a script); ``json_output`` shows each
    result's data as one JSON line. Exit 2 (the reason on stderr) when no engine
    answers.
    """
    source = stdin if stdin is not None else sys.stdin
    out = stdout if stdout is not None else sys.stdout
    interactive = source.isatty()
    ask = None
    if interactive:
        from actors.repl._console import ask_yes
        ask = ask_yes
    session = Session(config, allow_write=allow_write, yes=yes, json_output=json_output,
                      out=out, ask=ask)
    try:
        status = session.request("status", {})
    except ControlError as down:
        print(f"kitesaga repl: {down.message}", file=sys.stderr)
        return down.exit_code
    executor = Executor(session, make_namespace(session), out, sys.stderr)
    session.open_audit()
    try:
        if not interactive:
            return run_scripted(executor, source)
        from actors.repl._console import run_interactive
        history = state_file(config, config.repl.history_file, "repl.history_file")
        return run_interactive(executor, history, _banner(session, status),
                               _actor_names(session))
    except KeyboardInterrupt:  # Ctrl-C between commands of a script
        print("kitesaga repl: interrupted", file=sys.stderr)
        return 130
    finally:
        session.close()
