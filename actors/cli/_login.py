"""``kitesaga login`` and ``kitesaga token status``: the daily Kite Connect session.

``login`` reads ``ZERODHA_API_KEY``/``ZERODHA_API_SECRET``/``ZERODHA_TOKEN_KEY``
from the environment, prints the Kite login URL, receives the request token
(``--request-token``, or a one-shot listener on ``127.0.0.1:live.redirect_port``
that takes Kite's redirect), exchanges it with the real ``kiteconnect``
client for an access token and stores that encrypted (see
:mod:`actors.kite._token`). Nothing secret is ever printed or logged; the API
key appears only inside the login URL, where Kite puts it by design.

Exit codes of ``login``: 0 logged in (or, with ``--no-listen``, URL printed);
1 Kite could not be reached or did not answer in time (transient: try again);
2 anything else — a missing or bad variable, flag or config value, Kite
refusing the request token or secret, no redirect within ``live.login_timeout_s``,
a failed redirect; 130 interrupted. ``token status``: 0 valid; 1 expired,
missing or invalid (undecryptable, unsafe permissions, another API key);
2 the check itself cannot run (bad config, ``ZERODHA_TOKEN_KEY`` missing or bad).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from time import monotonic
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import kiteconnect
import requests
import structlog
from kiteconnect import exceptions as kite_errors

from actors.cli._flags import configure
from actors.config import Config, state_dir
from actors.kite._token import (
    API_KEY_VAR,
    Credentials,
    TokenStore,
    format_ist,
    token_path,
)
from actors.log import REDACTED, configure_logging, register_secret
from actors.market._calendar import IST

__all__ = ["add_login_parsers", "login", "login_url", "token_status"]

API_ROOT_VAR = "ZERODHA_API_ROOT"
EXIT_NETWORK = 1
EXIT_REFUSED = 2
EXIT_INTERRUPTED = 130
_FLAG_KEYS = {"state_dir": "KITESAGA_ENGINE_STATE_DIR"}
_MAX_MESSAGE = 300  # characters of a broker message shown; a reply is never dumped whole
_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")

_log = structlog.get_logger("kitesaga.login")


class LoginError(Exception):
    """``login`` cannot go on: ``str()`` is the one-line reason, ``code`` the exit code."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--state-dir", type=Path, metavar="DIR",
                   help="where the encrypted token is kept (env KITESAGA_STATE_DIR)")


def add_login_parsers(sub: Any) -> None:
    """Register ``login`` and ``token status`` and their flags."""
    p = sub.add_parser("login", help="log in to Kite Connect and store today's access token",
                       description="Secrets come only from the environment: ZERODHA_API_KEY, "
                       "ZERODHA_API_SECRET, ZERODHA_TOKEN_KEY (a Fernet key).")
    p.add_argument("--request-token", metavar="T",
                   help="the request_token of Kite's redirect (or the whole redirect URL); "
                   "without it, kitesaga listens once for the redirect")
    p.add_argument("--no-listen", action="store_true",
                   help="only print the login URL; then run login --request-token")
    _add_config_flags(p)
    p.set_defaults(func=login)
    token = sub.add_parser("token", help="the stored access token")
    actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    status = actions.add_parser("status", help="valid, expired or missing (exit 0 if valid)")
    _add_config_flags(status)
    status.add_argument("--json", action="store_true", help="one JSON object on stdout")
    status.set_defaults(func=token_status)


def _configure(args: argparse.Namespace) -> Config:
    """The configuration of this command (see :func:`actors.cli._flags.configure`)."""
    return configure(args, _FLAG_KEYS)


def login_url(config: Config, api_key: str) -> str:
    """Kite's login page for ``api_key`` (public in this URL by Kite's design)."""
    base = config.live.login_url
    return f"{base}{'&' if '?' in base else '?'}v=3&api_key={quote(api_key, safe='')}"


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0].strip() if values else None


def _token_from_query(query: dict[str, list[str]]) -> str:
    """The request token of a redirect's query, or :class:`LoginError`."""
    token, status = _one(query, "request_token"), _one(query, "status")
    if status is not None and status != "success":
        raise LoginError(f"Kite's redirect reports status={status!r}, not success: the login "
                         "was cancelled or refused; run kitesaga login again")
    if not token:
        raise LoginError("Kite's redirect carries no request_token; run kitesaga login again")
    return token


def _request_token_from(text: str) -> str:
    """``--request-token``: a bare token, or the redirect URL it was copied from."""
    text = text.strip()
    if "request_token=" in text:
        return _token_from_query(parse_qs(urlsplit(text).query or text))
    if not text or any(c.isspace() or not c.isprintable() for c in text):
        raise LoginError("--request-token: must be the request_token of Kite's redirect URL")
    return text


def _page(title: str, text: str) -> bytes:
    return (f"<!doctype html><meta charset=utf-8><title>kitesaga: {html.escape(title)}</title>"
            f"<p>{html.escape(text)}</p>\n").encode()


class _OneShotServer(HTTPServer):
    """An ``HTTPServer`` whose request errors (a browser hanging up) go to the log, not to
    stderr as a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.warning("login_listener_error", error=type(sys.exc_info()[1]).__name__)


def _await_redirect(port: int, timeout_s: float, socket_timeout_s: float,
                    announce: str) -> str:
    """Listen on 127.0.0.1:``port`` for ONE redirect that carries a request token.

    Requests without ``request_token`` and ``status`` (a favicon) get 404 and
    are ignored; the first that has either ends the wait: its token is
    returned, or a failed status raises :class:`LoginError`. ``announce`` is
    printed once the port is bound. No redirect within ``timeout_s`` raises
    :class:`LoginError`. The server is closed on return.
    """
    outcome: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        timeout = socket_timeout_s  # a silent connection cannot hold the listener

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            if "request_token" not in query and "status" not in query:
                self._answer(404, "not found", "kitesaga is waiting for Kite's login redirect.")
                return
            try:
                outcome["token"] = _token_from_query(query)
            except LoginError as exc:
                outcome["error"] = str(exc)
                self._answer(400, "login failed", f"Login failed: {exc}")
                return
            register_secret(outcome["token"])
            self._answer(200, "logged in", "kitesaga received the login: you can close this "
                         "tab; the terminal says whether the session was created.")

        def _answer(self, code: int, title: str, text: str) -> None:
            body = _page(title, text)
            self.send_response(code)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # the request line holds the request token: log the path only, never the query
            _log.debug("login_listener_request", path=urlsplit(getattr(self, "path", "")).path)

    try:
        server = _OneShotServer(("127.0.0.1", port), Handler)
    except OSError as exc:
        raise LoginError(f"cannot listen on 127.0.0.1:{port} for Kite's redirect "
                         f"({exc.strerror or exc}): free the port, set live.redirect_port "
                         "(KITESAGA_LIVE_REDIRECT_PORT) to the app's redirect URL port, or use "
                         "--no-listen and --request-token") from None
    with server:
        print(announce, flush=True)
        deadline = monotonic() + timeout_s
        while not outcome:
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise LoginError(f"no login redirect reached 127.0.0.1:{port} within "
                                 f"{timeout_s:g} s (live.login_timeout_s): run kitesaga login "
                                 "again, or use --no-listen and --request-token")
            server.timeout = remaining
            server.handle_request()
    if "error" in outcome:
        raise LoginError(outcome["error"])
    return outcome["token"]


def _clean(text: str, hidden: tuple[str, ...]) -> str:
    """A broker message made safe to print: secrets masked, one line, bounded."""
    for secret in sorted((s for s in hidden if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."


def _create_session(credentials: Credentials, request_token: str, root: str,
                    timeout_s: float) -> tuple[str, str | None]:
    """``(access_token, user_id)`` from Kite's ``POST /session/token``, or :class:`LoginError`."""
    hidden = (credentials.api_secret, request_token)
    kite = kiteconnect.KiteConnect(credentials.api_key, root=root, timeout=timeout_s)
    kite.reqsession.trust_env = False  # no proxy variable may divert the secret's checksum
    try:
        reply = kite.generate_session(request_token, api_secret=credentials.api_secret)
        access_token = reply["access_token"]
        user_id = reply.get("user_id")
    except kite_errors.TokenException as exc:
        raise LoginError(f"Kite refused the login (TokenException: {_clean(str(exc), hidden)}): "
                         "a request token works once and for a few minutes, and "
                         "ZERODHA_API_SECRET must be the app's secret; run kitesaga login "
                         "again") from None
    except kite_errors.NetworkException as exc:
        raise LoginError(f"Kite is unavailable (NetworkException: {_clean(str(exc), hidden)}): "
                         "try kitesaga login again shortly", EXIT_NETWORK) from None
    except kite_errors.DataException:  # its message quotes the whole reply: not shown
        raise LoginError(f"Kite's reply from {root} could not be read (DataException)") from None
    except kite_errors.KiteException as exc:
        raise LoginError(f"Kite refused the login ({type(exc).__name__}, HTTP {exc.code}: "
                         f"{_clean(str(exc), hidden)})") from None
    except requests.Timeout:
        raise LoginError(f"no answer from {root} within {timeout_s:g} s "
                         "(live.request_timeout_s): run kitesaga login again", EXIT_NETWORK) \
            from None
    except requests.RequestException as exc:
        found = _ERRNO_TEXT.search(str(exc))
        reason = found.group(0) if found else type(exc).__name__
        raise LoginError(f"cannot reach Kite at {root} ({reason}): check the network, "
                         f"{API_ROOT_VAR} and live.api_root", EXIT_NETWORK) from None
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise LoginError(f"Kite's session reply from {root} is malformed "
                         f"({type(exc).__name__})") from None
    if not isinstance(access_token, str) or not access_token.strip():
        raise LoginError(f"Kite's session reply from {root} has no access_token")
    register_secret(access_token)
    return access_token, (str(user_id) if user_id else None)


def _login(args: argparse.Namespace) -> int:
    config = _configure(args)
    credentials = Credentials.from_env()
    store = TokenStore(token_path(config))  # a bad ZERODHA_TOKEN_KEY stops us before the browser
    url = login_url(config, credentials.api_key)
    if args.request_token is None and args.no_listen:
        print(f"Open this URL in a browser and log in to Kite:\n  {url}\nthen copy the "
              "request_token from the address Kite redirects to and run:\n"
              "  kitesaga login --request-token <request_token>", flush=True)
        return 0
    request_token = None
    if args.request_token is not None:
        request_token = _request_token_from(args.request_token)
        register_secret(request_token)
    # from here on every structlog line goes to the state dir's log, none to the console
    configure_logging(state_dir(config), config.logging.level, config.logging.file_name)
    if request_token is None:
        live = config.live
        print(f"Open this URL in a browser and log in to Kite:\n  {url}", flush=True)
        announce = (f"waiting up to {live.login_timeout_s:g} s for Kite's redirect to "
                    f"http://127.0.0.1:{live.redirect_port}/ (Ctrl-C cancels)")
        request_token = _await_redirect(live.redirect_port, live.login_timeout_s,
                                        min(live.request_timeout_s, live.login_timeout_s),
                                        announce)
    root = os.environ.get(API_ROOT_VAR, "").strip() or config.live.api_root
    # taken BEFORE the exchange: the token's 06:00 expiry can only come out early, never late
    issued = datetime.now(IST)
    try:
        access_token, user_id = _create_session(credentials, request_token, root,
                                                config.live.request_timeout_s)
    except LoginError as exc:
        _log.warning("login_failed", reason=str(exc), api_root=root)
        raise
    token = store.save(access_token, credentials.api_key, issued, user_id)
    _log.info("login_succeeded", user_id=user_id, expires_at=token.expires_at.isoformat(),
              token_file=str(store.path))
    print(f"logged in as {user_id or 'an unnamed user'}; token valid until "
          f"{format_ist(token.expires_at)} (stored encrypted in {store.path})", flush=True)
    return 0


def login(args: argparse.Namespace) -> int:
    """``kitesaga login``; see the module doc for the exit codes."""
    try:
        return _login(args)
    except LoginError as exc:
        print(f"kitesaga: login failed: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("kitesaga: login cancelled", file=sys.stderr)
        return EXIT_INTERRUPTED


def token_status(args: argparse.Namespace) -> int:
    """``kitesaga token status``: 0 valid; 1 expired, missing or invalid. Never prints the
    token. The API key is checked against the token's when ``ZERODHA_API_KEY`` is set."""
    config = _configure(args)
    store = TokenStore(token_path(config))
    api_key = os.environ.get(API_KEY_VAR, "").strip() or None
    if api_key is not None:
        register_secret(api_key)
    status = store.check(datetime.now(IST), api_key)
    token = status.token
    if args.json:
        print(json.dumps({
            "status": status.state, "reason": status.reason, "token_file": str(store.path),
            "user_id": token.user_id if token else None,
            "login_time": token.login_time.isoformat() if token else None,
            "expires_at": token.expires_at.isoformat() if token else None,
            "api_key_checked": api_key is not None}))
    elif status.state == "valid" and token is not None:
        user = f" (user {token.user_id})" if token.user_id else ""
        print(f"valid until {format_ist(token.expires_at)}{user}")
    elif status.state == "expired" and token is not None:
        print(f"expired at {format_ist(token.expires_at)} (run kitesaga login)")
    elif status.state == "missing":
        print(f"missing (run kitesaga login); looked for {store.path}")
    else:
        print(f"invalid: {status.reason}")
    return 0 if status.state == "valid" else 1
