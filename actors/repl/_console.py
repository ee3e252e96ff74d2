"""The interactive console (stdin is a terminal): prompt_toolkit with Python colours,
history, completion and multi-line input."""

from __future__ import annotations

import codeop
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession, prompt
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import WordCompleter
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.lexers import PygmentsLexer

import messages
from actors.repl._builtins import Builtin
from actors.repl._execute import Executor
from actors.repl._session import owner_only

__all__ = ["ask_yes", "ready", "run_interactive"]


def ask_yes(question: str) -> bool:
    """Ask ``question`` at the terminal; True only for "y" or "yes" (Ctrl-C, Ctrl-D:
    no)."""
    try:
        answer = prompt(question)
    except (KeyboardInterrupt, EOFError):
        return False
    return answer.strip().lower() in ("y", "yes")


def ready(text: str) -> bool:
    """Whether Enter runs ``text`` as the Python REPL would: a whole statement, a block
    ended by an empty line, or an error to show; else Enter starts a new line."""
    lines = text.split("\n")
    if not text.strip() or (len(lines) > 1 and not lines[-1].strip()):
        return True
    try:
        return codeop.compile_command(text, "<repl>", "single") is not None
    except (SyntaxError, ValueError, OverflowError):  # shown when it runs
        return True


def _keys() -> KeyBindings:
    keys = KeyBindings()

    @keys.add("enter")
    def _enter(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        state = buffer.complete_state
        if state is not None:
            if state.current_completion is not None:
                buffer.apply_completion(state.current_completion)
                return
            buffer.cancel_completion()
        if ready(buffer.text):
            buffer.validate_and_handle()
            return
        line = buffer.document.current_line
        indent = len(line) - len(line.lstrip())
        if line.rstrip().endswith(":"):
            indent += 4
        buffer.insert_text("\n" + " " * indent)

    return keys


def _completer(namespace: dict[str, Any], actor_names: Iterable[str]) -> WordCompleter:
    meta: dict[str, str] = {name: "actor" for name in actor_names}
    meta.update({name: "message" for name in messages.__all__
                 if isinstance(getattr(messages, name), type)})
    meta.update({name: value.summary for name, value in namespace.items()
                 if isinstance(value, Builtin)})

    def words() -> list[str]:
        return sorted({*meta, *(k for k in namespace if not k.startswith("_"))})

    return WordCompleter(words, meta_dict=meta)


def history_file(path: Path) -> FileHistory:
    """The prompt's history at ``path``, created owner-only (0600)."""
    os.close(owner_only(path))
    return FileHistory(str(path))


def run_interactive(executor: Executor, history: Path, banner: str,
                    actor_names: Iterable[str]) -> int:
    """Prompt, run, repeat: Ctrl-C cancels the line (or the running command), Ctrl-D
    (or ``exit()``) ends the session with 0."""
    write = executor.session.allow_write
    message = "kitesaga[WRITE]> " if write else "kitesaga> "
    session: PromptSession[str] = PromptSession(
        message, multiline=True, key_bindings=_keys(),
        lexer=PygmentsLexer.from_filename("repl.py"),  # Pygments' PythonLexer
        history=history_file(history),
        completer=_completer(executor.namespace, actor_names),
        auto_suggest=AutoSuggestFromHistory(), complete_while_typing=True,
        prompt_continuation=lambda width, _line, _wrap: "." * (width - 1) + " ")
    print(banner, file=executor.out, flush=True)
    while True:
        try:
            source = session.prompt()
            if source.strip():
                executor.run(source.rstrip())
        except KeyboardInterrupt:  # at the prompt, or between two commands
            continue
        except (EOFError, SystemExit):  # Ctrl-D, exit()
            return 0
