"""Kite Connect credentials and the encrypted access-token store.

Secrets come only from the environment, never from a prompt, a flag or the
configuration: ``ZERODHA_API_KEY`` and ``ZERODHA_API_SECRET`` (the Kite
Connect app), ``ZERODHA_TOKEN_KEY`` (the Fernet key that encrypts the stored
access token). Each is registered with :func:`actors.log.register_secret` as
soon as it is read, so no log line can carry it; no message or ``repr`` of
this module contains one.

The access token is stored, Fernet-encrypted, as JSON ``{access_token,
api_key, user_id, login_time, expires_at}`` in ``state_dir / live.token_file``
(mode 0600, directory 0700), written atomically. Reading it refuses a file
that group or others could read or write, a symbolic link, a file of another
user, and a file the key cannot decrypt; it never deletes or rewrites it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography.fernet import Fernet, InvalidToken

from actors.config import Config, state_dir
from actors.log import REDACTED, register_secret
from actors.market._calendar import IST
from messages._validate import require_aware

__all__ = [
    "API_KEY_VAR",
    "API_SECRET_VAR",
    "TOKEN_KEY_VAR",
    "Credentials",
    "StoredToken",
    "TokenError",
    "TokenState",
    "TokenStatus",
    "TokenStore",
    "format_ist",
    "token_expiry",
    "token_path",
    "valid_access_token",
]

API_KEY_VAR = "ZERODHA_API_KEY"
API_SECRET_VAR = "ZERODHA_API_SECRET"
TOKEN_KEY_VAR = "ZERODHA_TOKEN_KEY"
TOKEN_EXPIRY_TIME = time(6, 0)
"""Kite access tokens die at 06:00 IST (regulatory), whatever time they were issued."""

_PRIVATE_FILE = 0o600
_PRIVATE_DIR = 0o700
_NOT_OWNER_BITS = 0o177  # any of these set: wider than 0600
_GENERATE_KEY = ('python -c "from cryptography.fernet import Fernet; '
                 'print(Fernet.generate_key().decode())"')
_LOGIN_AGAIN = "run `kitesaga login`"

TokenState = Literal["valid", "expired", "missing", "invalid"]


class TokenError(ValueError):
    """A credential or the stored access token cannot be used; the message says why and
    what to do. It never contains a secret value."""


def format_ist(moment: datetime) -> str:
    """``moment`` as ``YYYY-MM-DD HH:MM IST``."""
    return require_aware("moment", moment).astimezone(IST).strftime("%Y-%m-%d %H:%M IST")


def token_expiry(login_time: datetime) -> datetime:
    """When a token issued at ``login_time`` dies: the first 06:00 IST strictly after it.

    A login at 09:00 IST expires at 06:00 the next morning; a login at 00:30 IST
    expires at 06:00 the SAME morning (the broker flushes every token at 06:00,
    whenever it was issued); a login at exactly 06:00:00 expires the next day.
    Choosing the earliest possible 06:00 means the engine can only ever think a
    live token dead, never a dead token live. ``login_time`` must be aware.
    """
    local = require_aware("login_time", login_time).astimezone(IST)
    expiry = datetime.combine(local.date(), TOKEN_EXPIRY_TIME, tzinfo=IST)
    return expiry if expiry > local else expiry + timedelta(days=1)


def _required(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise TokenError(f"{name} is not set: export {name}=... ({what}); kitesaga reads it "
                         "only from the environment")
    register_secret(value)
    return value


@dataclass(frozen=True, slots=True)
class Credentials:
    """The Kite Connect app's API key and secret. ``repr`` masks both."""

    api_key: str
    api_secret: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Credentials:
        """Read ``ZERODHA_API_KEY`` and ``ZERODHA_API_SECRET`` from ``env`` (default
        :data:`os.environ`), surrounding blanks removed, and register both as secrets.

        Raises :class:`TokenError` naming the first missing or empty variable.
        """
        env = os.environ if env is None else env
        return cls(_required(env, API_KEY_VAR, "your Kite Connect app's API key"),
                   _required(env, API_SECRET_VAR, "your Kite Connect app's API secret"))

    def __repr__(self) -> str:
        return f"Credentials(api_key={REDACTED!r}, api_secret={REDACTED!r})"


@dataclass(frozen=True, slots=True)
class StoredToken:
    """An access token as stored. ``repr`` masks the token and the API key.

    Contract: ``login_time`` and ``expires_at`` are aware; the token is
    ``valid`` strictly before ``expires_at`` and ``expired`` from then on.
    """

    access_token: str
    api_key: str
    login_time: datetime
    expires_at: datetime
    user_id: str | None = None

    def status(self, now: datetime) -> Literal["valid", "expired"]:
        """``"valid"`` iff ``now`` (aware) is before ``expires_at``."""
        return "valid" if require_aware("now", now) < self.expires_at else "expired"

    def __repr__(self) -> str:
        return (f"StoredToken(access_token={REDACTED!r}, api_key={REDACTED!r}, "
                f"user_id={self.user_id!r}, login_time={self.login_time.isoformat()!r}, "
                f"expires_at={self.expires_at.isoformat()!r})")


@dataclass(frozen=True, slots=True)
class TokenStatus:
    """The state of the stored token, a one-line ``reason`` (no secret in it) and,
    unless ``missing`` or ``invalid``, the token itself."""

    state: TokenState
    reason: str
    token: StoredToken | None = None


def _fernet(env: Mapping[str, str]) -> Fernet:
    raw = env.get(TOKEN_KEY_VAR, "").strip()
    if not raw:
        raise TokenError(f"{TOKEN_KEY_VAR} is not set: it encrypts the stored access token. "
                         f"Generate one with {_GENERATE_KEY}, keep it safe and export "
                         f"{TOKEN_KEY_VAR}=<that key>")
    register_secret(raw)
    try:
        return Fernet(raw.encode("ascii"))
    except ValueError:  # also binascii.Error and UnicodeEncodeError
        raise TokenError(f"{TOKEN_KEY_VAR} is not a valid Fernet key (it must be 32 url-safe "
                         f"base64-encoded bytes); generate one with {_GENERATE_KEY}") from None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and each missing parent with mode 0700 (``mkdir(parents=True)``
    would give the parents the umask's mode); existing directories are left alone."""
    missing = [d for d in (directory, *directory.parents) if not d.is_dir()]
    for each in reversed(missing):
        with contextlib.suppress(FileExistsError):  # created meanwhile: theirs, not ours
            each.mkdir(mode=_PRIVATE_DIR)
            each.chmod(_PRIVATE_DIR)  # mkdir's mode is filtered by the umask


def _write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically by ``data``: a 0600 temp file beside it, fsync, rename."""
    directory = path.parent
    _make_private_dirs(directory)
    temp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), _PRIVATE_FILE)  # exactly 0600, whatever the umask
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    _fsync_dir(directory)


def _read_private(path: Path) -> bytes | None:
    """The bytes of ``path``, ``None`` if it does not exist; refuses an unsafe file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise TokenError(f"the token file {path} is a symbolic link; kitesaga refuses it: "
                             f"remove it and {_LOGIN_AGAIN}") from None
        raise TokenError(f"cannot read the token file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as src:
        info = os.fstat(src.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise TokenError(f"the token file {path} is not a regular file")
        if info.st_uid != os.getuid():
            raise TokenError(f"the token file {path} belongs to another user; kitesaga "
                             f"refuses it: remove it and {_LOGIN_AGAIN}")
        mode = stat.S_IMODE(info.st_mode)
        if mode & _NOT_OWNER_BITS:
            raise TokenError(f"the token file {path} has permissions {mode:04o}, wider than "
                             f"0600; kitesaga refuses it: chmod 600 {path}")
        return src.read()


def _aware(data: Mapping[str, Any], key: str) -> datetime:
    moment = datetime.fromisoformat(data[key])
    return require_aware(key, moment)


class TokenStore:
    """The encrypted access-token file at ``path``, keyed by ``ZERODHA_TOKEN_KEY``.

    Contract: the constructor reads the key from ``key_env`` (default
    :data:`os.environ`) and raises :class:`TokenError` if it is missing or not a
    Fernet key — before anything else happens. :meth:`save` replaces the file
    atomically (mode 0600; the directory is created 0700 if missing).
    :meth:`load` never modifies or deletes the file.
    """

    def __init__(self, path: Path, key_env: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        self._fernet = _fernet(os.environ if key_env is None else key_env)

    def __repr__(self) -> str:
        return f"TokenStore(path={str(self.path)!r})"

    def save(self, access_token: str, api_key: str, login_time: datetime,
             user_id: str | None = None) -> StoredToken:
        """Encrypt and store a new token; return it. ``expires_at`` is
        :func:`token_expiry` of ``login_time`` (aware). Raises :class:`TokenError`
        if a value is empty or the file cannot be written."""
        for name, value in (("access_token", access_token), ("api_key", api_key)):
            if not isinstance(value, str) or not value.strip():
                raise TokenError(f"cannot store the token: {name} is empty")
        register_secret(access_token)
        token = StoredToken(access_token, api_key, require_aware("login_time", login_time),
                            token_expiry(login_time), user_id or None)
        payload = json.dumps({"access_token": token.access_token, "api_key": token.api_key,
                              "user_id": token.user_id,
                              "login_time": token.login_time.isoformat(),
                              "expires_at": token.expires_at.isoformat()})
        try:
            _write_private(self.path, self._fernet.encrypt(payload.encode("utf-8")))
        except OSError as exc:
            raise TokenError(f"cannot write the token file {self.path}: "
                             f"{exc.strerror or exc}") from None
        return token

    def load(self) -> StoredToken | None:
        """The stored token, or ``None`` if there is no file.

        Raises :class:`TokenError` if the file is unsafe (see the module doc), cannot
        be decrypted with this key, or does not hold a kitesaga token.
        """
        data = _read_private(self.path)
        if data is None:
            return None
        try:
            plain = self._fernet.decrypt(data)
        except InvalidToken:
            raise TokenError(f"cannot decrypt {self.path}: {TOKEN_KEY_VAR} differs from the one "
                             f"used at login, or the file is corrupt; {_LOGIN_AGAIN} "
                             "again") from None
        try:
            fields = json.loads(plain)
            token = StoredToken(str(fields["access_token"]), str(fields["api_key"]),
                                _aware(fields, "login_time"), _aware(fields, "expires_at"),
                                str(fields["user_id"]) if fields.get("user_id") else None)
        except (ValueError, TypeError, KeyError) as exc:
            what = type(exc).__name__
            raise TokenError(f"{self.path} decrypts but does not hold a kitesaga token "
                             f"({what}); {_LOGIN_AGAIN} again") from None
        register_secret(token.access_token)
        return token

    def check(self, now: datetime, api_key: str | None = None) -> TokenStatus:
        """The stored token's state at ``now`` (aware), never raising for a bad file.

        ``invalid`` covers an unsafe, undecryptable or malformed file and, when
        ``api_key`` is given, a token issued for another API key.
        """
        require_aware("now", now)
        try:
            token = self.load()
        except TokenError as exc:
            return TokenStatus("invalid", str(exc))
        if token is None:
            return TokenStatus("missing", f"no access token at {self.path}: {_LOGIN_AGAIN} "
                                          "first")
        if api_key is not None and token.api_key != api_key:
            return TokenStatus("invalid", f"the access token at {self.path} was issued for "
                               f"another API key than {API_KEY_VAR}: {_LOGIN_AGAIN} with this "
                               "key")
        if token.status(now) == "expired":
            return TokenStatus("expired", f"the access token expired at "
                               f"{format_ist(token.expires_at)} (Kite tokens die at 06:00 "
                               f"IST): {_LOGIN_AGAIN} for a new one", token)
        return TokenStatus("valid", f"valid until {format_ist(token.expires_at)}", token)


def token_path(config: Config) -> Path:
    """``state_dir(config) / live.token_file``; the file name must be a plain name."""
    name = config.live.token_file
    if not name.strip() or Path(name).name != name or name in (".", ".."):
        raise TokenError(f"live.token_file: must be a plain file name inside the state dir, "
                         f"got {name!r}")
    return state_dir(config) / name


def valid_access_token(config: Config, env: Mapping[str, str] | None = None,
                       now: datetime | None = None) -> StoredToken:
    """The stored access token if live mode can use it at ``now`` (default: the wall clock).

    Reads the credentials and the token key from ``env`` (default
    :data:`os.environ`). Raises :class:`TokenError` — one line, what is wrong and
    what to do — when a variable is missing, or the token is missing, expired,
    undecryptable, unsafe or for another API key (the engine exits 2).
    """
    env = os.environ if env is None else env
    moment = datetime.now(IST) if now is None else require_aware("now", now)
    credentials = Credentials.from_env(env)
    status = TokenStore(token_path(config), env).check(moment, credentials.api_key)
    if status.state != "valid" or status.token is None:
        raise TokenError(status.reason)
    return status.token
