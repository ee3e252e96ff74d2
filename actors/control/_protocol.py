"""The control socket's wire format and its client: one JSON request per line, one JSON
reply per line, over a unix socket in the state dir.

A request is ``{"command": NAME, "args": {...}}``; a reply is ``{"ok": true,
"result": {...}}`` or ``{"ok": false, "error": TEXT, "exit": CODE}`` (``exit``
is the code the CLI exits with: 2 for bad input, 1 for a refusal).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from actors.config import Config, state_dir

__all__ = ["ControlError", "NoEngine", "decode_line", "encode_line", "read_line", "request",
           "socket_path", "stream"]

_UNIX_PATH_MAX = 107  # sun_path holds 108 bytes, one of them the terminating NUL


class ControlError(Exception):
    """The engine answered a control request with an error: ``message`` says why and
    ``exit_code`` is what the command line exits with (2 bad input, 1 refused).
    ``confirm`` is set when the request only needs confirming (the REPL's
    dangerous messages): it says what the request would do."""

    def __init__(self, message: str, exit_code: int = 1, *, confirm: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.confirm = confirm


class NoEngine(ControlError):  # noqa: N818  (a state, not a failure of ours)
    """Nothing answers at the control socket: no engine runs at that state dir."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"no engine is running at {path.parent} (nothing answers at the "
                         f"control socket {path}: {why})", 2)
        self.path = path


def socket_path(config: Config) -> Path:
    """The control socket of the engine at ``config``'s state dir:
    ``<engine.state_dir>/<control.socket_name>``. Raises ValueError (naming the key and
    the value) for a socket name that is not a plain file name, or a path too long for
    a unix socket."""
    name = config.control.socket_name
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"control.socket_name: must be a plain file name inside the state "
                         f"dir, got {name!r}")
    path = state_dir(config) / name
    if len(str(path).encode()) > _UNIX_PATH_MAX:
        raise ValueError(f"control.socket_name: the socket path {str(path)!r} is longer than "
                         f"a unix socket allows ({_UNIX_PATH_MAX} bytes): use a shorter "
                         f"engine.state_dir")
    return path


def encode_line(message: Mapping[str, Any]) -> bytes:
    """One message as a line of compact JSON (UTF-8, ending in a newline)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8") + b"\n"


def decode_line(line: bytes, what: str) -> dict[str, Any]:
    """A line of JSON as a dict; ValueError naming ``what`` otherwise."""
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as bad:
        raise ValueError(f"{what}: not a line of JSON: {bad}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what}: must be a JSON object, got {type(value).__name__}")
    return value


def read_line(conn: socket.socket, limit: int | None, what: str) -> bytes:
    """Read up to a newline (at most ``limit`` bytes; None: no limit); ValueError if
    longer, ``b""`` on a connection closed before a whole line."""
    data = bytearray()
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
        if limit is not None and len(data) > limit and b"\n" not in data[:limit + 1]:
            raise ValueError(f"{what}: longer than {limit} bytes")
    return bytes(data[:data.index(b"\n")])


def _connect(path: Path, timeout: float) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(str(path))
    except FileNotFoundError:
        conn.close()
        raise NoEngine(path, "no such file") from None
    except ConnectionRefusedError:
        conn.close()
        raise NoEngine(path, "a stale socket: its engine is gone") from None
    except OSError as bad:
        conn.close()
        raise NoEngine(path, bad.strerror or str(bad)) from None
    return conn


def _result(line: bytes, command: str) -> dict[str, Any]:
    """A final reply line's result; ControlError for a refusal or a malformed line."""
    if not line:
        raise ControlError(f"the engine closed the control connection without answering "
                           f"{command!r}", 2)
    reply = decode_line(line, "reply")
    if reply.get("ok") is True and isinstance(reply.get("result"), dict):
        result: dict[str, Any] = reply["result"]
        return result
    code = reply.get("exit")
    confirm = reply.get("confirm")
    raise ControlError(str(reply.get("error") or f"a malformed reply: {reply!r}"),
                       code if type(code) is int and code > 0 else 2,
                       confirm=confirm if isinstance(confirm, str) else None)


def request(path: Path, command: str, args: Mapping[str, Any] | None = None, *,
            timeout: float) -> dict[str, Any]:
    """Send one request to the engine at ``path`` and return its result.

    Raises :class:`NoEngine` when nothing answers at ``path`` (no file, a stale
    socket, a file that is not a socket), :class:`ControlError` with the engine's
    message and exit code when it refuses, and :class:`ControlError` (exit 2) when
    no whole reply comes within ``timeout`` seconds.
    """
    conn = _connect(path, timeout)
    try:
        try:
            conn.sendall(encode_line({"command": command, "args": dict(args or {})}))
            line = read_line(conn, None, "reply")
        except TimeoutError:
            raise ControlError(f"the engine did not answer {command!r} within {timeout:g}s "
                               f"(control.timeout_s)", 2) from None
        except OSError as bad:
            raise ControlError(f"the engine closed the control connection: {bad}", 2) from None
    finally:
        conn.close()
    return _result(line, command)


def stream(path: Path, command: str, args: Mapping[str, Any] | None = None, *,
           timeout: float) -> Iterator[dict[str, Any]]:
    """Send one streaming request (``trace``) and yield what the engine sends: each
    ``{"event": {...}}`` line as it arrives, then ``{"result": {...}}``. ``timeout``
    bounds the wait for each line. Closing the generator early closes the
    connection, which ends the stream at the engine. Raises like :func:`request`."""
    conn = _connect(path, timeout)
    try:
        reader = conn.makefile("rb")
        try:
            conn.sendall(encode_line({"command": command, "args": dict(args or {})}))
            while True:
                line = reader.readline()
                if not line.endswith(b"\n"):
                    yield {"result": _result(b"", command)}  # raises: cut short
                message = decode_line(line, "reply")
                if isinstance(message.get("event"), dict):
                    yield {"event": message["event"]}
                    continue
                yield {"result": _result(line, command)}
                return
        except TimeoutError:
            raise ControlError(f"the engine sent nothing on {command!r} for {timeout:g}s",
                               2) from None
        except OSError as bad:
            raise ControlError(f"the engine closed the control connection: {bad}", 2) from None
        finally:
            reader.close()
    finally:
        conn.close()
