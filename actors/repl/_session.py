"""One REPL session: its engine connection, its write and confirmation policy, and its
audit log."""

from __future__ import annotations

import getpass
import json
import os
import secrets
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TextIO

from actors.config import Config, state_dir
from actors.control import request, socket_path, stream
from actors.log import SECRET_ENV_VARS, redact_secrets, register_secret

__all__ = ["Ask", "ReplError", "Result", "Session", "state_file"]

Ask = Callable[[str], bool]
"""Puts a yes/no question to the user at the terminal; True for yes."""


class ReplError(Exception):
    """The REPL itself refuses (a read-only session, an unconfirmed command, a bad
    argument): shown as ``error: <message>``, never with a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Result:
    """What a built-in returns. Contract: ``repr()`` (what the REPL shows) is the
    readable ``text`` and never raises; ``data`` is the engine's reply as it came
    (a JSON-ready dict or list), which ``--json`` prints."""

    def __init__(self, data: Any, text: str) -> None:
        self.data = data
        self.text = text

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def state_file(config: Config, name: str, key: str) -> Path:
    """``<state dir>/<name>``; ValueError naming ``key`` unless ``name`` is a plain file
    name."""
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"{key}: must be a plain file name inside the state dir, got {name!r}")
    return state_dir(config) / name


def owner_only(path: Path) -> int:
    """Open ``path`` for appending, created if missing, mode 0600 either way; the fd."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return fd


def _login() -> str:
    """Who is typing: the login name, and the person behind sudo (kitesaga-admin runs
    the console as the engine's user through sudo)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name, no passwd entry: the uid says who
        user = str(os.getuid())
    behind = os.environ.get("SUDO_USER")
    return f"{user} (sudo by {behind})" if behind and behind != user else user


class Session:
    """The REPL's attachment to the engine at ``config``'s state dir.

    Contract: :meth:`request` sends one control request and returns its result, or
    raises ControlError (NoEngine when nothing answers). :meth:`require_write`
    raises :class:`ReplError` unless the session was started with ``allow_write``;
    :meth:`confirm` returns when the user agreed (``yes``, or "y" to ``ask`` at a
    terminal) and raises :class:`ReplError` otherwise. Between :meth:`begin` and
    :meth:`audit` a command's output is collected with :meth:`record`; ``audit``
    writes one JSON line to ``<state dir>/<repl.audit_file>`` (mode 0600), secrets
    redacted and the result cut to ``repl.audit_result_chars``. Used from one thread.
    """

    def __init__(self, config: Config, *, allow_write: bool, yes: bool, json_output: bool,
                 out: TextIO, ask: Ask | None) -> None:
        self.config = config
        self.allow_write = allow_write
        self.yes = yes
        self.json_output = json_output
        self.out = out
        self.ask = ask
        self.id = secrets.token_hex(4)
        self._user = _login()
        self._output: list[str] = []
        self._printed: list[Result] = []
        self._audit: IO[str] | None = None
        for var in SECRET_ENV_VARS:  # what the engine's log hides, the audit log hides too
            if os.environ.get(var, "").strip():
                register_secret(os.environ[var])

    # -- the engine -------------------------------------------------------------------

    def timeout(self, command: str, wait_s: float | None = None) -> float:
        """How long to wait for ``command``'s answer: the engine's own wait, plus
        ``control.timeout_s`` to answer."""
        control = self.config.control
        if command == "halt":
            return 2 * control.timeout_s + control.halt_timeout_s
        return (wait_s or control.timeout_s) + control.timeout_s

    def request(self, command: str, args: Mapping[str, Any] | None = None,
                wait_s: float | None = None) -> dict[str, Any]:
        """One control request; its result dict (ControlError/NoEngine otherwise)."""
        return request(socket_path(self.config), command, args,
                       timeout=self.timeout(command, wait_s))

    def stream(self, command: str, args: Mapping[str, Any],
               wait_s: float | None) -> Generator[dict[str, Any], None, None]:
        """A streamed control request (``trace``) that may go quiet for up to ``wait_s``
        seconds (None: ``repl.trace_timeout_s``): its lines as they come; closing it
        closes the connection."""
        yield from stream(socket_path(self.config), command, args,
                          timeout=self.timeout(command,
                                               wait_s or self.config.repl.trace_timeout_s))

    # -- policy -----------------------------------------------------------------------

    def require_write(self, what: str) -> None:
        """Refuse ``what`` (e.g. "halt trading") in a read-only session."""
        if not self.allow_write:
            raise ReplError(f"read-only session: start kitesaga repl with --allow-write to "
                            f"{what}")

    def confirm(self, question: str, refused: str | None = None) -> None:
        """Return if the user confirms ``question`` (``--yes``, or "y" at a terminal);
        ReplError otherwise (``refused``: the engine's reason, shown when no one can be
        asked)."""
        if self.yes:
            return
        if self.ask is None:
            raise ReplError(f"{refused or question + ': needs confirmation'} "
                            f"(confirm with --yes)")
        if not self.ask(f"{question} — send it? [y/N] "):
            raise ReplError(f"not sent: {question}")

    # -- output and audit -------------------------------------------------------------

    def begin(self) -> None:
        """A command starts: nothing recorded or printed yet."""
        self._output.clear()
        self._printed.clear()

    def printed(self, result: Result) -> None:
        """``result`` was printed as it came (a trace): showing it again in this
        command would repeat it."""
        self._printed.append(result)

    def was_printed(self, result: Result) -> bool:
        """Whether ``result`` was printed as it came in the current command."""
        return any(r is result for r in self._printed)

    def record(self, text: str) -> None:
        """Something the current command produced (a result's text, an error)."""
        self._output.append(text)

    def open_audit(self) -> None:
        """Open (create, 0600) the audit log."""
        path = state_file(self.config, self.config.repl.audit_file, "repl.audit_file")
        self._audit = os.fdopen(owner_only(path), "a", encoding="utf-8")

    def close(self) -> None:
        """Close the audit log."""
        if self._audit is not None:
            self._audit.close()
            self._audit = None

    def audit(self, command: str, ok: bool) -> None:
        """One audit line for ``command``: what it produced (cut), and whether it
        succeeded."""
        if self._audit is None:
            return
        text = "\n".join(self._output)
        limit = self.config.repl.audit_result_chars
        if len(text) > limit:
            text = text[:limit] + "…"
        line = {"at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "user": self._user, "pid": os.getpid(), "session": self.id,
                "write": self.allow_write, "command": command, "ok": ok, "result": text}
        scrubbed = redact_secrets(None, "audit", line)
        self._audit.write(json.dumps(dict(scrubbed), ensure_ascii=False, default=str) + "\n")
        self._audit.flush()
