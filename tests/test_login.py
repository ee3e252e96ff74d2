"""The token store, the credentials and ``kitesaga login`` / ``token status``, run for real.

The store tests use real files and real Fernet keys. The CLI tests run the
console script as a subprocess; the session tests talk to the real Kite
simulator (``actors.kitesim``) through the real ``kiteconnect`` client.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest
import requests
from cryptography.fernet import Fernet

from actors.config import Config, load_config
from actors.kite import Credentials, StoredToken, TokenError, TokenStore, token_expiry
from actors.kite import valid_access_token as valid_token
from actors.kite._token import token_path
from actors.log import REDACTED, redact_secrets
from actors.market._calendar import IST

try:
    from actors.kitesim import SimServer
except ImportError:  # the simulator is built alongside; its tests skip until it exists
    SimServer = None

needs_sim = pytest.mark.skipif(SimServer is None, reason="kitesim not available")

KEY = Fernet.generate_key().decode()
API_KEY = "appkey-1234"
API_SECRET = "s3cr3t-ApiSecret-value"
ACCESS = "AccessToken-abcdef0123456789"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=IST)


EXPIRY_MARGIN = timedelta(seconds=60)  # longer than any wall-clock test below takes


@pytest.fixture
def clear_of_0600() -> None:
    """Wall-clock tests start at least ``EXPIRY_MARGIN`` before the next 06:00 IST.

    Every token dies at 06:00 IST, so a token saved at 05:59:59 is expired a
    second later: a test that reads "valid" would fail by the calendar, not by
    a bug. Within the margin, wait for 06:00 to pass (at most once a day).
    """
    now = datetime.now(IST)
    left = token_expiry(now) - now
    if left < EXPIRY_MARGIN:
        time.sleep(left.total_seconds() + 1)


# --- token_expiry ------------------------------------------------------------------------


@pytest.mark.parametrize(("login", "expiry"), [
    ("2026-11-25 09:15:00", "2026-11-26 06:00:00"),   # a trading morning: next day
    ("2026-11-25 23:59:59", "2026-11-26 06:00:00"),
    ("2026-11-25 00:30:00", "2026-11-25 06:00:00"),   # after midnight: the SAME morning
    ("2026-11-25 05:59:59", "2026-11-25 06:00:00"),
    ("2026-11-25 06:00:00", "2026-11-26 06:00:00"),   # strictly after: 06:00 itself rolls on
    ("2026-11-25 06:00:01", "2026-11-26 06:00:00"),
    ("2026-12-31 18:00:00", "2027-01-01 06:00:00"),   # year end
    ("2028-02-28 10:00:00", "2028-02-29 06:00:00"),   # leap day
], ids=["morning", "late-night", "after-midnight", "just-before-6", "at-6", "just-after-6",
        "year-end", "leap-day"])
def test_token_expiry_is_the_first_0600_ist_strictly_after_login(login: str,
                                                                   expiry: str) -> None:
    assert token_expiry(_at(login)) == _at(expiry)


def test_token_expiry_reads_other_zones_in_ist() -> None:
    # 00:30 UTC is 06:00 IST: the token dies at 06:00 IST the next day
    assert token_expiry(datetime(2026, 11, 25, 0, 30, tzinfo=UTC)) == _at(
        "2026-11-26 06:00:00")
    # 00:29 UTC is 05:59 IST: it dies one minute later
    assert token_expiry(datetime(2026, 11, 25, 0, 29, tzinfo=UTC)) == _at(
        "2026-11-25 06:00:00")


def test_token_expiry_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        token_expiry(datetime(2026, 11, 25, 9, 0))


# --- the store ---------------------------------------------------------------------------


def _store(path: Path, key: str = KEY) -> TokenStore:
    return TokenStore(path, {"ZERODHA_TOKEN_KEY": key})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_save_load_round_trip_and_status(tmp_path: Path) -> None:
    store = _store(tmp_path / "tok.enc")
    login = _at("2026-11-25 09:00:00")
    saved = store.save(ACCESS, API_KEY, login, "AB1234")
    loaded = store.load()
    assert loaded == saved
    assert loaded.access_token == ACCESS and loaded.api_key == API_KEY
    assert loaded.user_id == "AB1234" and loaded.login_time == login
    assert loaded.expires_at == _at("2026-11-26 06:00:00")
    assert loaded.status(_at("2026-11-26 05:59:59")) == "valid"
    assert loaded.status(_at("2026-11-26 06:00:00")) == "expired"
    check = store.check(_at("2026-11-25 12:00:00"), API_KEY)
    assert (check.state, check.token) == ("valid", saved)
    assert "2026-11-26 06:00 IST" in check.reason
    assert ACCESS.encode() not in (tmp_path / "tok.enc").read_bytes()  # encrypted at rest


def test_load_of_a_missing_file_is_none_and_check_says_missing(tmp_path: Path) -> None:
    store = _store(tmp_path / "none.enc")
    assert store.load() is None
    check = store.check(datetime.now(IST))
    assert check.state == "missing" and "kitesaga login" in check.reason
    assert not (tmp_path / "none.enc").exists()


def test_file_is_0600_and_new_dir_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        store = _store(tmp_path / "state" / "deep" / "tok.enc")
        store.save(ACCESS, API_KEY, datetime.now(IST))
    finally:
        os.umask(old)
    assert _mode(store.path) == 0o600
    assert _mode(store.path.parent) == 0o700
    assert _mode(store.path.parent.parent) == 0o700
    store.save("another-token-value", API_KEY, datetime.now(IST))  # replaced, still 0600
    assert _mode(store.path) == 0o600
    assert store.load().access_token == "another-token-value"
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["tok.enc"]  # no temp left


def test_wrong_key_is_refused_and_the_file_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "tok.enc"
    _store(path).save(ACCESS, API_KEY, datetime.now(IST))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    other = Fernet.generate_key().decode()
    with pytest.raises(TokenError) as caught:
        _store(path, other).load()
    message = str(caught.value)
    assert "cannot decrypt" in message and "ZERODHA_TOKEN_KEY differs" in message
    assert "kitesaga login" in message
    assert other not in message and KEY not in message and ACCESS not in message
    assert _store(path, other).check(datetime.now(IST)).state == "invalid"
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def _private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


@pytest.mark.parametrize("content", [b"", b"garbage", b"gAAAAAtruncated-fernet"],
                         ids=["empty", "garbage", "truncated"])
def test_corrupt_file_is_refused_and_kept(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "tok.enc"
    _private(path, content)
    with pytest.raises(TokenError, match=r"cannot decrypt.*or the file is corrupt"):
        _store(path).load()
    assert path.read_bytes() == content


def test_decryptable_but_foreign_content_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tok.enc"
    _private(path, Fernet(KEY.encode()).encrypt(b'{"access_token": "x"}'))
    with pytest.raises(TokenError, match="does not hold a kitesaga token"):
        _store(path).load()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o700, 0o666])
def test_a_file_wider_than_0600_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "tok.enc"
    _store(path).save(ACCESS, API_KEY, datetime.now(IST))
    path.chmod(mode)
    with pytest.raises(TokenError, match=f"permissions {mode:04o}.*chmod 600"):
        _store(path).load()
    assert _mode(path) == mode  # reported, not silently "fixed"


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.enc"
    _store(real).save(ACCESS, API_KEY, datetime.now(IST))
    link = tmp_path / "tok.enc"
    link.symlink_to(real)
    with pytest.raises(TokenError, match="symbolic link"):
        _store(link).load()


def test_missing_token_key_says_how_to_generate_one(tmp_path: Path) -> None:
    for env in ({}, {"ZERODHA_TOKEN_KEY": "   "}):
        with pytest.raises(TokenError) as caught:
            TokenStore(tmp_path / "t", env)
        assert "ZERODHA_TOKEN_KEY is not set" in str(caught.value)
        assert "Fernet.generate_key()" in str(caught.value)


@pytest.mark.parametrize("bad", ["not-a-key", "A" * 44, "é" * 44, KEY[:-2]],
                         ids=["text", "wrong-length-decoded", "non-ascii", "truncated"])
def test_an_invalid_token_key_is_refused_without_echoing_it(tmp_path: Path, bad: str) -> None:
    with pytest.raises(TokenError) as caught:
        TokenStore(tmp_path / "t", {"ZERODHA_TOKEN_KEY": bad})
    assert "not a valid Fernet key" in str(caught.value)
    assert bad not in str(caught.value)
    assert caught.value.__cause__ is None  # the key's decoding error is not chained


def test_save_refuses_empty_values(tmp_path: Path) -> None:
    store = _store(tmp_path / "t")
    with pytest.raises(TokenError, match="access_token is empty"):
        store.save(" ", API_KEY, datetime.now(IST))
    with pytest.raises(ValueError, match="timezone-aware"):
        store.save(ACCESS, API_KEY, datetime(2026, 11, 25, 9))
    assert not store.path.exists()


def test_a_token_of_another_api_key_is_invalid(tmp_path: Path) -> None:
    store = _store(tmp_path / "t")
    store.save(ACCESS, "some-other-key", datetime.now(IST))
    check = store.check(datetime.now(IST), API_KEY)
    assert check.state == "invalid" and "another API key" in check.reason
    assert "ZERODHA_API_KEY" in check.reason
    assert API_KEY not in check.reason and "some-other-key" not in check.reason


# --- credentials and secrets -------------------------------------------------------------


@pytest.mark.parametrize(("env", "named"), [
    ({}, "ZERODHA_API_KEY"),
    ({"ZERODHA_API_KEY": "", "ZERODHA_API_SECRET": API_SECRET}, "ZERODHA_API_KEY"),
    ({"ZERODHA_API_KEY": API_KEY}, "ZERODHA_API_SECRET"),
    ({"ZERODHA_API_KEY": API_KEY, "ZERODHA_API_SECRET": " \n"}, "ZERODHA_API_SECRET"),
], ids=["none", "empty-key", "no-secret", "blank-secret"])
def test_missing_credentials_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(TokenError) as caught:
        Credentials.from_env(env)
    assert f"{named} is not set: export {named}=..." in str(caught.value)
    assert API_KEY not in str(caught.value) and API_SECRET not in str(caught.value)


def test_credentials_come_from_env_and_never_show(tmp_path: Path) -> None:
    creds = Credentials.from_env({"ZERODHA_API_KEY": f" {API_KEY}\n",
                                  "ZERODHA_API_SECRET": API_SECRET})
    assert (creds.api_key, creds.api_secret) == (API_KEY, API_SECRET)
    token = _store(tmp_path / "t").save(ACCESS, API_KEY, datetime.now(IST))
    shown = " ".join([repr(creds), str(creds), repr(token), str(token),
                      repr(_store(tmp_path / "t")), f"{[creds, token]}"])
    for secret in (API_KEY, API_SECRET, ACCESS, KEY):
        assert secret not in shown
    assert REDACTED in repr(creds) and REDACTED in repr(token)
    # read secrets are registered: the log redactor scrubs them wherever they appear
    line = redact_secrets(None, "info", {"event": f"{API_SECRET} {ACCESS} {KEY}",
                                         "nested": [{"x": API_KEY}]})
    assert API_SECRET not in str(line) and ACCESS not in str(line) and KEY not in str(line)
    assert API_KEY not in str(line)


# --- valid_access_token ------------------------------------------------------------------


def _config(state: Path, **live: Any) -> Config:
    config = load_config(None, {"KITESAGA_ENGINE_STATE_DIR": str(state)})
    return replace(config, live=replace(config.live, **live)) if live else config


def _live_env(**extra: str) -> dict[str, str]:
    return {"ZERODHA_API_KEY": API_KEY, "ZERODHA_API_SECRET": API_SECRET,
            "ZERODHA_TOKEN_KEY": KEY, **extra}


@pytest.mark.usefixtures("clear_of_0600")
def test_valid_access_token_for_live_mode(tmp_path: Path) -> None:
    config = _config(tmp_path / "state")
    login = _at("2026-11-25 08:00:00")
    with pytest.raises(TokenError, match=r"no access token at .*kitesaga login"):
        valid_token(config, _live_env(), now=login)
    _store(token_path(config)).save(ACCESS, API_KEY, login, "AB1234")
    token = valid_token(config, _live_env(), now=login + timedelta(hours=8))
    assert token.access_token == ACCESS
    with pytest.raises(TokenError, match=r"expired at 2026-11-26 06:00 IST.*kitesaga login"):
        valid_token(config, _live_env(), now=_at("2026-11-26 06:00:00"))
    with pytest.raises(TokenError, match="another API key"):
        valid_token(config, _live_env(ZERODHA_API_KEY="other"), now=login)
    with pytest.raises(TokenError, match="cannot decrypt"):
        valid_token(config, _live_env(ZERODHA_TOKEN_KEY=Fernet.generate_key().decode()),
                    now=login)
    with pytest.raises(TokenError, match="ZERODHA_API_SECRET is not set"):
        valid_token(config, {"ZERODHA_API_KEY": API_KEY, "ZERODHA_TOKEN_KEY": KEY}, now=login)
    _store(token_path(config)).save("fresh-token-value", API_KEY, datetime.now(IST))
    assert valid_token(config, _live_env()).access_token == "fresh-token-value"  # wall clock


def test_token_file_must_be_a_plain_name(tmp_path: Path) -> None:
    for name in ("../escape.enc", "sub/t.enc", ".."):
        with pytest.raises(TokenError, match=r"live.token_file: must be a plain file name"):
            token_path(_config(tmp_path, token_file=name))


# --- the CLI -----------------------------------------------------------------------------


def _script() -> list[str]:
    script = Path(sys.executable).with_name("kitesaga")
    return [str(script)] if script.exists() else [sys.executable, "-m", "actors.cli"]


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KITESAGA_", "ZERODHA_"))}
    env.update(extra)
    return env


def _kitesaga(args: list[str], cwd: Path, env: dict[str, str],
              timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_script(), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _assert_clean(text: str, *secrets: str) -> None:
    assert "Traceback" not in text, text
    for secret in secrets:
        assert secret not in text, "a secret leaked"


@pytest.mark.parametrize(("drop", "named"), [
    ("ZERODHA_API_KEY", "ZERODHA_API_KEY"), ("ZERODHA_API_SECRET", "ZERODHA_API_SECRET"),
    ("ZERODHA_TOKEN_KEY", "ZERODHA_TOKEN_KEY")])
def test_login_without_a_variable_exits_2_naming_it(tmp_path: Path, drop: str,
                                                     named: str) -> None:
    env = {k: v for k, v in _live_env().items() if k != drop}
    done = _kitesaga(["login", "--request-token", "abc", "--state-dir", "s"], tmp_path,
                     _cli_env(**env))
    assert done.returncode == 2, done.stderr
    assert f"{named} is not set" in done.stderr
    _assert_clean(done.stdout + done.stderr, API_SECRET, KEY)
    assert not (tmp_path / "s").exists()  # refused before anything was created


def test_login_with_an_invalid_token_key_exits_2(tmp_path: Path) -> None:
    done = _kitesaga(["login", "--no-listen", "--state-dir", "s"], tmp_path,
                     _cli_env(**_live_env(ZERODHA_TOKEN_KEY="bad-key-value")))
    assert done.returncode == 2
    assert "ZERODHA_TOKEN_KEY is not a valid Fernet key" in done.stderr
    _assert_clean(done.stdout + done.stderr, "bad-key-value", API_SECRET)


def test_login_flags_are_validated_and_named(tmp_path: Path) -> None:
    done = _kitesaga(["login", "--no-listen", "--state-dir", " "], tmp_path,
                     _cli_env(**_live_env()))
    assert done.returncode == 2 and "--state-dir" in done.stderr, done.stderr
    done = _kitesaga(["token", "status", "--state-dir", "s"], tmp_path,
                     _cli_env(**_live_env(KITESAGA_LIVE_REDIRECT_PORT="70000")))
    assert done.returncode == 2 and "KITESAGA_LIVE_REDIRECT_PORT" in done.stderr
    _assert_clean(done.stdout + done.stderr)


def test_no_listen_prints_only_the_login_url(tmp_path: Path) -> None:
    done = _kitesaga(["login", "--no-listen", "--state-dir", "s"], tmp_path,
                     _cli_env(**_live_env()))
    assert done.returncode == 0, done.stderr
    assert f"https://kite.zerodha.com/connect/login?v=3&api_key={API_KEY}" in done.stdout
    assert "--request-token" in done.stdout
    _assert_clean(done.stdout + done.stderr, API_SECRET, KEY)


def test_listener_times_out_with_exit_2(tmp_path: Path) -> None:
    port = _free_port()
    done = _kitesaga(["login", "--state-dir", "s"], tmp_path, _cli_env(**_live_env(
        KITESAGA_LIVE_REDIRECT_PORT=str(port), KITESAGA_LIVE_LOGIN_TIMEOUT_S="0.5")))
    assert done.returncode == 2
    assert f"no login redirect reached 127.0.0.1:{port} within 0.5 s" in done.stderr
    _assert_clean(done.stdout + done.stderr, API_SECRET, KEY)


def test_unreachable_kite_exits_1(tmp_path: Path) -> None:
    root = f"http://127.0.0.1:{_free_port()}"
    done = _kitesaga(["login", "--request-token", "reqtok123", "--state-dir", "s"], tmp_path,
                     _cli_env(**_live_env(ZERODHA_API_ROOT=root)))
    assert done.returncode == 1, done.stderr
    assert f"cannot reach Kite at {root}" in done.stderr
    _assert_clean(done.stdout + done.stderr, API_SECRET, KEY, "reqtok123")
    assert not (tmp_path / "s" / "access_token.enc").exists()
    _assert_clean((tmp_path / "s" / "kitesaga.log").read_text(), API_SECRET, KEY, "reqtok123",
                  API_KEY)


def _lines(stream: IO[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue[str], text: str, timeout: float = 30.0) -> list[str]:
    """Every line read up to and including the first that contains ``text``."""
    deadline, seen = time.monotonic() + timeout, []
    while not seen or text not in seen[-1]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no line with {text!r} within {timeout}s; got {seen!r}")
        try:
            seen.append(lines.get(timeout=remaining))
        except queue.Empty:
            continue
    return seen


def _drain(lines: queue.Queue[str]) -> str:
    out = []
    while not lines.empty():
        out.append(lines.get())
    return "".join(out)


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, list[str]]]:
    """``kitesaga login`` waiting for the redirect on a free port."""
    port = _free_port()
    proc = subprocess.Popen([*_script(), "login", "--state-dir", "s"], cwd=tmp_path,
                            env=_cli_env(**_live_env(KITESAGA_LIVE_REDIRECT_PORT=str(port))),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        shown = _wait_for(_lines(proc.stdout), "waiting up to")
        yield proc, port, shown
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_listener_ignores_stray_requests_and_fails_on_a_failed_redirect(
        listening: tuple[subprocess.Popen[str], int, list[str]]) -> None:
    proc, port, _ = listening
    with requests.Session() as http:
        http.trust_env = False
        stray = http.get(f"http://127.0.0.1:{port}/favicon.ico", timeout=10)
        assert stray.status_code == 404 and proc.poll() is None  # still waiting
        failed = http.get(f"http://127.0.0.1:{port}/?action=login&status=cancelled",
                          timeout=10)
    assert failed.status_code == 400 and "Login failed" in failed.text
    assert proc.wait(timeout=20) == 2
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "status='cancelled'" in err
    _assert_clean(err, API_SECRET, KEY)


def test_ctrl_c_cancels_the_wait_without_a_traceback(
        listening: tuple[subprocess.Popen[str], int, list[str]]) -> None:
    proc, _, _ = listening
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 130
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "login cancelled" in err
    _assert_clean(err, API_SECRET, KEY)


@pytest.mark.usefixtures("clear_of_0600")
def test_token_status_missing_expired_valid_and_unsafe(tmp_path: Path) -> None:
    env = _cli_env(**_live_env())
    path = tmp_path / "s" / "access_token.enc"
    done = _kitesaga(["token", "status", "--state-dir", "s"], tmp_path, env)
    assert done.returncode == 1 and done.stdout.startswith("missing (run kitesaga login)")
    assert not (tmp_path / "s").exists()  # a status check creates nothing

    _store(path).save(ACCESS, API_KEY, datetime.now(IST) - timedelta(days=2), "AB1234")
    done = _kitesaga(["token", "status", "--state-dir", "s"], tmp_path, env)
    assert done.returncode == 1 and done.stdout.startswith("expired at "), done.stdout

    issued = datetime.now(IST)
    _store(path).save(ACCESS, API_KEY, issued, "AB1234")
    done = _kitesaga(["token", "status", "--state-dir", "s"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"valid until {token_expiry(issued):%Y-%m-%d %H:%M} IST")
    done = _kitesaga(["token", "status", "--state-dir", "s", "--json"], tmp_path, env)
    data = json.loads(done.stdout)
    assert done.returncode == 0 and data["status"] == "valid" and data["user_id"] == "AB1234"
    assert datetime.fromisoformat(data["expires_at"]) == token_expiry(issued)

    done = _kitesaga(["token", "status", "--state-dir", "s"], tmp_path,
                     _cli_env(**_live_env(ZERODHA_API_KEY="another-app")))
    assert done.returncode == 1 and "another API key" in done.stdout
    done = _kitesaga(["token", "status", "--state-dir", "s"], tmp_path,
                     _cli_env(**_live_env(ZERODHA_TOKEN_KEY=Fernet.generate_key().decode())))
    assert done.returncode == 1 and "cannot decrypt" in done.stdout
    path.chmod(0o644)
    done = _kitesaga(["token", "status", "--state-dir", "s"], tmp_path, env)
    assert done.returncode == 1 and f"chmod 600 {path}" in done.stdout
    done = _kitesaga(["token", "status", "--state-dir", "s"], tmp_path,
                     _cli_env(**{k: v for k, v in _live_env().items()
                                 if k != "ZERODHA_TOKEN_KEY"}))
    assert done.returncode == 2 and "ZERODHA_TOKEN_KEY is not set" in done.stderr
    _assert_clean(done.stdout + done.stderr, ACCESS, KEY)


# --- against the Kite simulator ----------------------------------------------------------


def _sim_config(redirect_port: int | None = None) -> Config:
    env = {} if redirect_port is None else {
        "KITESAGA_SIM_REDIRECT_URL": f"http://127.0.0.1:{redirect_port}/"}
    return load_config(None, env)


@pytest.fixture
def sim_env(clear_of_0600: None) -> Iterator[tuple[Any, dict[str, str], int]]:
    """A running simulator whose login redirects to a free port, and the CLI's env."""
    if SimServer is None:
        pytest.skip("kitesim not available")
    port = _free_port()
    server = SimServer(_sim_config(port), port=0).start()
    try:
        env = _cli_env(ZERODHA_API_ROOT=server.url, ZERODHA_API_KEY=server.api_key,
                       ZERODHA_API_SECRET=server.api_secret, ZERODHA_TOKEN_KEY=KEY,
                       KITESAGA_LIVE_REDIRECT_PORT=str(port),
                       KITESAGA_LIVE_LOGIN_URL=f"{server.url}/connect/login")
        yield server, env, port
    finally:
        server.stop()


def _check_logged_in(tmp_path: Path, api_key: str, output: str, *secrets: str) -> StoredToken:
    path = tmp_path / "s" / "access_token.enc"
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    token = _store(path).load()  # the test decrypts the file to learn the access token
    assert token is not None and token.access_token and token.api_key == api_key
    assert f"token valid until {token.expires_at:%Y-%m-%d %H:%M} IST" in output
    everything = output + "".join(p.read_text() for p in path.parent.glob("*.log"))
    _assert_clean(everything, token.access_token, KEY, *secrets)
    return token


@needs_sim
def test_login_with_request_token_against_the_simulator(
        tmp_path: Path, sim_env: tuple[Any, dict[str, str], int]) -> None:
    server, env, _ = sim_env
    done = _kitesaga(["login", "--request-token", "reqtok42", "--state-dir", "s"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("logged in as ")
    token = _check_logged_in(tmp_path, server.api_key, done.stdout + done.stderr,
                             server.api_secret, "reqtok42")
    status = _kitesaga(["token", "status", "--state-dir", "s"], tmp_path, env)
    assert status.returncode == 0 and status.stdout.startswith("valid until "), status.stdout
    _assert_clean(status.stdout + status.stderr, token.access_token, server.api_secret)
    live = load_config(None, {"KITESAGA_ENGINE_STATE_DIR": str(tmp_path / "s")})
    before_expiry = token.expires_at - timedelta(seconds=1)
    assert valid_token(live, env, now=before_expiry).access_token == token.access_token


@needs_sim
def test_login_through_the_one_shot_listener(
        tmp_path: Path, sim_env: tuple[Any, dict[str, str], int]) -> None:
    server, env, port = sim_env
    proc = subprocess.Popen([*_script(), "login", "--state-dir", "s"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        lines = _lines(proc.stdout)
        shown = _wait_for(lines, f"127.0.0.1:{port}")  # printed once the port is bound
        url = next(line.strip() for line in shown if "/connect/login?" in line)
        assert url == f"{server.url}/connect/login?v=3&api_key={server.api_key}"
        with requests.Session() as browser:
            browser.trust_env = False
            page = browser.get(url, timeout=30)  # 302 from the simulator to the listener
        assert page.status_code == 200 and "close this tab" in page.text
        redirect = page.history[0].headers["Location"]
        request_token = redirect.split("request_token=")[1].split("&")[0]
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        done = _wait_for(lines, "logged in as ")
        output = "".join(shown + done) + _drain(lines) + proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    assert "login_listener" not in output  # log lines go to the log file, not the console
    _check_logged_in(tmp_path, server.api_key, output, server.api_secret, request_token)
    log = (tmp_path / "s" / "kitesaga.log").read_text()
    assert '"login_succeeded"' in log  # (the listener's request lines are DEBUG)


@needs_sim
def test_login_with_a_wrong_secret_exits_2(
        tmp_path: Path, sim_env: tuple[Any, dict[str, str], int]) -> None:
    _, env, _ = sim_env
    env = {**env, "ZERODHA_API_SECRET": "definitely-not-the-secret"}
    done = _kitesaga(["login", "--request-token", "reqtok42", "--state-dir", "s"], tmp_path, env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Kite refused the login (TokenException" in done.stderr
    assert "ZERODHA_API_SECRET" in done.stderr
    assert not (tmp_path / "s" / "access_token.enc").exists()
    logs = "".join(p.read_text() for p in (tmp_path / "s").glob("*.log"))
    _assert_clean(done.stdout + done.stderr + logs, "definitely-not-the-secret", KEY,
                  "reqtok42")


@needs_sim
def test_request_token_may_be_the_whole_redirect_url(
        tmp_path: Path, sim_env: tuple[Any, dict[str, str], int]) -> None:
    server, env, port = sim_env
    redirect = f"http://127.0.0.1:{port}/?action=login&status=success&request_token=rq9"
    done = _kitesaga(["login", "--request-token", redirect, "--state-dir", "s"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    _check_logged_in(tmp_path, server.api_key, done.stdout + done.stderr, server.api_secret)
