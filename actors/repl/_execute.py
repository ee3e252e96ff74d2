"""Running the user's Python: one command at a time, results shown like the Python
REPL's, errors in one line, every command audited; and the scripted (stdin) loop."""

from __future__ import annotations

import ast
import codeop
import contextlib
import dataclasses
import functools
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

import messages
from actors.control import ControlError
from actors.repl._session import ReplError, Result, Session

__all__ = ["Executor", "run_scripted", "statements"]

_CONTINUATIONS = ("else", "elif", "except", "finally")


class Executor:
    """Runs commands in ``namespace``. Contract: :meth:`run` never raises for
    anything the command does (SystemExit excepted, which ends the REPL): a syntax
    error, a refusal or an exception is one ``error: ...`` line on ``err``; each
    expression statement's value is shown on ``out`` (its text, or with
    ``session.json_output`` its data as one JSON line) and kept in ``_``; each
    command is audited once."""

    def __init__(self, session: Session, namespace: dict[str, Any], out: TextIO,
                 err: TextIO) -> None:
        self.session = session
        self.namespace = namespace
        self.out = out
        self.err = err
        if out is not sys.stdout:  # the user's print() goes where results go
            namespace.setdefault("print", functools.partial(print, file=out, flush=True))

    def run(self, source: str, first_line: int = 1) -> bool:
        """Run ``source`` (one command; ``first_line`` numbers its first line in
        messages); True if it succeeded."""
        self.session.begin()
        error: str | None = None
        try:
            tree = ast.parse("\n" * (first_line - 1) + source, "<repl>", "exec")
            for statement in tree.body:
                self._one(statement)
        except SyntaxError as bad:
            error = _syntax_error(bad)
        except (ControlError, ReplError) as refused:
            error = refused.message
        except KeyboardInterrupt:
            error = "interrupted (Ctrl-C)"
        except SystemExit:
            self.session.audit(source, True)
            raise
        except Exception as bad:  # noqa: BLE001  (the user's code: one line, no traceback)
            error = f"{type(bad).__name__}: {bad}"
        if error is not None:
            print(f"error: {error}", file=self.err, flush=True)
            self.session.record(f"error: {error}")
        self.session.audit(source, error is None)
        return error is None

    def _one(self, statement: ast.stmt) -> None:
        if isinstance(statement, ast.Expr):
            code = compile(ast.Expression(statement.value), "<repl>", "eval")
            self.show(eval(code, self.namespace))
        else:
            exec(compile(ast.Module([statement], type_ignores=[]), "<repl>", "exec"),
                 self.namespace)

    def show(self, value: Any) -> None:
        """Show a value as the Python REPL would (None: nothing), and keep it in ``_``."""
        if value is None:
            return
        self.namespace["_"] = value
        if isinstance(value, Result) and self.session.was_printed(value):
            return  # a trace printed itself as it ran
        if self.session.json_output:
            shown = json.dumps(_data(value), ensure_ascii=False, default=str)
        else:
            shown = repr(value)
        if not isinstance(value, Result):  # a built-in recorded its own text
            self.session.record(shown)
        print(shown, file=self.out, flush=True)


def _data(value: Any) -> Any:
    if isinstance(value, Result):
        return value.data
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        with contextlib.suppress(TypeError, ValueError):  # not a message: its repr
            return messages.to_dict(value)
        return repr(value)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _syntax_error(bad: SyntaxError) -> str:
    where = f"line {bad.lineno}" if bad.lineno else "input"
    if bad.offset:
        where += f", column {bad.offset}"
    return f"{type(bad).__name__}: {bad.msg} ({where})"


def _starts_statement(line: str) -> bool:
    if not line or line[0].isspace() or line[0] in "#)]}":
        return False
    word = line.split(maxsplit=1)[0].rstrip(":")
    return word not in _CONTINUATIONS


def _complete(source: str) -> bool:
    """Whether ``source`` is whole statements (or hopeless: it will show its error)."""
    try:
        ast.parse(source)
    except SyntaxError:
        try:
            return codeop.compile_command(source + "\n", "<stdin>", "exec") is not None
        except (SyntaxError, ValueError, OverflowError):
            return True
    return True


def statements(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """The top-level statements in ``lines``, each with the number of its first line,
    yielded as soon as the next one starts: a block (``for``, ``def``...) or an open
    bracket runs on until a line at column 0 starts something new."""
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if buffer and _starts_statement(line) and _complete("\n".join(buffer)):
            yield start, "\n".join(buffer).rstrip()
            buffer = []
        if not buffer:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = number
        buffer.append(line)
    if buffer:
        yield start, "\n".join(buffer).rstrip()


def run_scripted(executor: Executor, stdin: TextIO) -> int:
    """Run every statement of ``stdin`` in turn (no prompt); 0 if all succeeded, else 1."""
    failed = False
    for first_line, source in statements(stdin):
        try:
            ok = executor.run(source, first_line)
        except SystemExit:  # exit() ends the script; what failed before still counts
            break
        failed = failed or not ok
    return 1 if failed else 0
