"""The control server: a unix socket in the state dir (mode 0600) answering one JSON
request per line with one JSON reply per line. Its handlers only read the engine's
published snapshots and ``tell`` OrderActor messages with a reply address."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import stat
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from actors.config import Config
from actors.control import _ask, _commands, _inspect, _trace, _views
from actors.control._protocol import (
    ControlError,
    decode_line,
    encode_line,
    read_line,
    socket_path,
)
from actors.control._views import AlertSource, Sources

if TYPE_CHECKING:
    from actors._system import Engine

__all__ = ["ControlServer", "ControlStartError", "check_control", "start_control"]

_log = structlog.get_logger("kitesaga.control")

Handler = Callable[["Engine", Sources, dict[str, Any]], dict[str, Any]]

_HANDLERS: dict[str, Handler] = {
    "status": lambda engine, sources, args: _views.status(engine, sources),
    "positions": lambda engine, sources, args: {"positions": _views.positions(engine, sources)},
    "health": lambda engine, sources, args: _views.health(engine, sources),
    "sagas": _inspect.sagas,
    "orders": lambda engine, sources, args: _commands.orders(engine, args),
    "submit": lambda engine, sources, args: _commands.submit(engine, args),
    "halt": lambda engine, sources, args: _commands.halt(engine, args),
    "resume": lambda engine, sources, args: _commands.resume(engine, args),
    "actors": _inspect.actors,
    "inspect": _inspect.inspect,
    "prices": _inspect.prices,
    "limits": _inspect.limits,
    "saga": _inspect.saga,
    "ask": _ask.ask,
    "tell": _ask.tell,
}
_STREAMS = {"trace": _trace.trace}  # answered with event lines, then the result line
_CHANGES = frozenset({"submit", "halt", "resume", "ask", "tell"})  # WARNING: the operator acted


class ControlStartError(OSError):
    """The control socket cannot be claimed: a live engine answers there, or the path
    holds something that is not a socket (never replaced)."""


def _peer_uid(conn: socket.socket) -> int | None:
    """The connecting process's uid (Linux SO_PEERCRED), None where unsupported."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    raw = conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    uid: int = struct.unpack("3i", raw)[1]
    return uid


def _stale(path: Path, timeout: float) -> bool:
    """False if nothing is at ``path``, True for a stale socket (nothing answers);
    ControlStartError for a live engine answering there or a file that is not a socket."""
    try:
        found = path.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(found.st_mode):
        raise ControlStartError(f"{path}: exists and is not a socket; refusing to replace it "
                                f"(move it away, or set control.socket_name)")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(timeout)
        probe.connect(str(path))
    except ConnectionRefusedError:  # stale: the engine that made it is gone
        return True
    except OSError as bad:
        raise ControlStartError(f"{path}: cannot tell whether an engine is running there: "
                                f"{bad}") from None
    finally:
        probe.close()
    raise ControlStartError(f"an engine is already running at {path.parent}: its control "
                            f"socket {path} answers; stop it first (or use another "
                            f"--state-dir)")


def _gone(conn: socket.socket, wait: float) -> bool:
    """Wait up to ``wait`` s; True if the client closed its end meanwhile (a
    streaming request's client sends nothing after its request line)."""
    readable, _, _ = select.select([conn], [], [], wait)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def check_control(config: Config) -> None:
    """Before an engine starts: raise ControlStartError if an engine already runs at
    ``config``'s state dir (its control socket answers) or a foreign file holds the
    socket's path; a stale socket passes (:meth:`ControlServer.start` replaces it).
    Nothing is changed."""
    _stale(socket_path(config), config.control.timeout_s)


class ControlServer:
    """The engine's control socket.

    Contract:
    - :meth:`start` claims ``path`` (``<state dir>/<control.socket_name>``): a
      missing path or a stale socket (nothing answers) is taken; a live engine
      answering there, or any file that is not a socket, raises
      :class:`ControlStartError` and nothing is changed. The socket is bound in a
      private 0700 directory, made 0600, then hard-linked into place, so it is
      never reachable with wider permissions, and two engines cannot both claim it.
    - Only the socket's owner may connect (0600; on Linux the peer's uid is
      checked too). Each connection carries one request line (at most
      ``control.max_request_bytes``, read within ``control.timeout_s``) and gets
      one reply line; connections are served on their own threads, so a long
      ``halt`` does not hold up ``status``.
    - Handlers read published snapshots and ``tell`` messages; bad input is an
      error reply with exit code 2, a refusal exit code 1; an unexpected error
      is logged and answered (exit 1), never fatal to the server.
    - :meth:`stop` closes the socket and removes the path if it is still ours.
    """

    def __init__(self, engine: Engine, alerts: AlertSource | None = None) -> None:
        self._engine = engine
        self._config = engine.config.control
        self.path: Path = socket_path(engine.config)
        self._sources = Sources.of(engine, alerts)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._identity: tuple[int, int] | None = None

    # -- starting and stopping ----------------------------------------------------------

    def start(self) -> ControlServer:
        """Claim the path and serve; raises ControlStartError (or OSError) if it cannot."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._claim()
        sock = self._bind()
        self._sock = sock
        self._thread = threading.Thread(target=self._accept, args=(sock,), daemon=True,
                                        name="kitesaga-control")
        self._thread.start()
        _log.info("control_listening", path=str(self.path))
        return self

    def _claim(self) -> None:
        if _stale(self.path, self._config.timeout_s):
            _log.warning("control_stale_socket_replaced", path=str(self.path))
            self.path.unlink(missing_ok=True)

    def _bind(self) -> socket.socket:
        private = Path(tempfile.mkdtemp(prefix=".c", dir=self.path.parent))  # 0700
        temp = private / "s"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(temp))
            os.chmod(temp, 0o600)
            sock.listen()
            try:
                os.link(temp, self.path)
            except FileExistsError:
                raise ControlStartError(f"{self.path}: claimed by another process while this "
                                        f"engine was starting; refusing to replace it") from None
            found = self.path.stat()
            self._identity = (found.st_dev, found.st_ino)
        except BaseException:
            sock.close()
            raise
        finally:
            temp.unlink(missing_ok=True)
            private.rmdir()
        return sock

    def stop(self) -> None:
        """Stop serving and remove the socket file if it is still this server's
        (idempotent). Connections being answered finish on their own threads."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the accept loop
        sock.close()
        if self._thread is not None:
            self._thread.join(self._config.timeout_s)
        try:
            found = self.path.lstat()
        except FileNotFoundError:
            return
        if (found.st_dev, found.st_ino) == self._identity:
            self.path.unlink(missing_ok=True)
        _log.info("control_stopped", path=str(self.path))

    # -- serving ------------------------------------------------------------------------

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:  # closed by stop()
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True,
                             name="kitesaga-control-request").start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            uid = _peer_uid(conn)
            if uid is not None and uid != os.getuid():
                _log.warning("control_refused_peer", uid=uid)
                return
            try:
                conn.settimeout(self._config.timeout_s)
                line = read_line(conn, self._config.max_request_bytes, "request")
                if not line:
                    return
                conn.settimeout(self._config.timeout_s)
                reply = self._answer(line, conn)
                conn.sendall(encode_line(reply))
            except (OSError, ValueError) as bad:  # a client gone, slow or too long
                with contextlib.suppress(OSError):
                    conn.sendall(encode_line({"ok": False, "exit": 2,
                                              "error": f"bad request: {bad}"}))

    def _answer(self, line: bytes, conn: socket.socket) -> dict[str, Any]:
        command: Any = None
        args: Any = None
        try:
            request = decode_line(line, "request")
            command, args = request.get("command"), request.get("args", {})
            known = isinstance(command, str) and (command in _HANDLERS or command in _STREAMS)
            if not known:
                raise ValueError(f"command: unknown, got {command!r} (one of "
                                 f"{', '.join(sorted([*_HANDLERS, *_STREAMS]))})")
            if not isinstance(args, dict):
                raise ValueError(f"args: must be a JSON object, got {args!r}")
            if command in _STREAMS:
                result = _STREAMS[command](self._engine, self._sources, args,
                                           lambda event: conn.sendall(encode_line(event)),
                                           lambda wait: _gone(conn, wait))
            else:
                result = _HANDLERS[command](self._engine, self._sources, args)
            reply: dict[str, Any] = {"ok": True, "result": result}
        except ControlError as refused:
            reply = {"ok": False, "error": refused.message, "exit": refused.exit_code}
            if refused.confirm is not None:
                reply["confirm"] = refused.confirm
        except ValueError as bad:
            reply = {"ok": False, "error": str(bad), "exit": 2}
        except Exception as bad:  # noqa: BLE001  (answered and logged; the server goes on)
            _log.exception("control_command_failed", command=command)
            reply = {"ok": False, "error": f"internal error: {type(bad).__name__}: {bad}",
                     "exit": 1}
        if command in _CHANGES:  # the operator acted: an audit line with what was asked
            _log.warning("control_command", command=command, args=args, ok=reply["ok"],
                         outcome=reply["result"].get("outcome") if reply["ok"]
                         else reply["error"])
        else:
            _log.debug("control_command", command=command, ok=reply["ok"])
        return reply


def start_control(engine: Engine, alerts: AlertSource | None = None) -> ControlServer:
    """Start the control socket of a started ``engine``; ``alerts`` is the alert
    module's hook (see :data:`actors.control.AlertSource`). Stop it with
    :meth:`ControlServer.stop` after the engine (so ``status`` answers while it drains).

    If the socket cannot be claimed (another engine answers at this state dir, a
    foreign file holds the path, a bad ``control.socket_name``), ``engine`` is stopped
    (without draining: it has not traded under control) and the error raised: an
    engine must not run without its control socket, nor beside another engine on one
    state dir. (:func:`check_control` makes the same check before an engine starts.)
    """
    try:
        return ControlServer(engine, alerts).start()
    except BaseException:
        engine.stop(drain=False)
        raise
