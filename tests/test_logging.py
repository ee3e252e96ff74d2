"""configure_logging: JSON lines in the state dir, nothing on the console, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.log import REDACTED, configure_logging, get_logger, register_secret

pytestmark = pytest.mark.usefixtures("restore_logging")  # tests/conftest.py


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_writes_json_lines_to_the_state_dir_only(tmp_path: Path,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state" / "nested"
    path = configure_logging(state, "INFO", "kitesaga.log")
    assert path == state / "kitesaga.log"
    get_logger("kitesaga.test").info("order placed", order_id="A1", qty=65,
                                     price=Decimal("101.05"), legs=["CE", "PE"])
    logging.getLogger("pykka").warning("actor %s stopped", "broker")
    get_logger("kitesaga.test").debug("too detailed")  # below INFO: dropped

    lines = read_lines(path)
    assert [line["event"] for line in lines] == ["order placed", "actor broker stopped"]
    first = lines[0]
    assert list(first)[:4] == ["timestamp", "level", "logger", "event"]
    assert first["level"] == "info" and first["logger"] == "kitesaga.test"
    assert (first["order_id"], first["qty"], first["price"], first["legs"]) == (
        "A1", 65, "101.05", ["CE", "PE"])
    stamp = datetime.fromisoformat(first["timestamp"])
    assert first["timestamp"].endswith("Z") and stamp.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    assert lines[1]["level"] == "warning" and lines[1]["logger"] == "pykka"

    console = capfd.readouterr()
    assert "order placed" not in console.out + console.err
    assert "broker stopped" not in console.out + console.err


def test_dir_is_private_and_file_is_owner_only(tmp_path: Path) -> None:
    old = os.umask(0)  # the worst umask: nothing filtered
    try:
        path = configure_logging(tmp_path / "a" / "state", "INFO", "k.log")
    finally:
        os.umask(old)
    for created in (tmp_path / "a", tmp_path / "a" / "state"):  # parents too
        assert stat.S_IMODE(created.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_configuring_twice_retargets_without_duplicating(tmp_path: Path) -> None:
    first = configure_logging(tmp_path / "one", "INFO", "k.log")
    assert configure_logging(tmp_path / "one", "INFO", "k.log") == first
    get_logger("t").info("once")
    assert [line["event"] for line in read_lines(first)] == ["once"]

    second = configure_logging(tmp_path / "two", "WARNING", "k.log")
    get_logger("t").info("filtered")
    get_logger("t").error("moved")
    assert [line["event"] for line in read_lines(second)] == ["moved"]
    assert [line["event"] for line in read_lines(first)] == ["once"]


def test_rejects_a_bad_level_or_file_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="LOUD"):
        configure_logging(tmp_path, "LOUD", "k.log")
    with pytest.raises(ValueError, match="plain file name"):
        configure_logging(tmp_path, "INFO", "../k.log")


def test_env_secret_appears_nowhere_in_the_log(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "zs3cr3t-Q7f9LmW2pX"
    monkeypatch.setenv("ZERODHA_API_SECRET", secret)
    path = configure_logging(tmp_path / "state", "DEBUG", "k.log")
    log = get_logger("kitesaga.auth")

    log.info(f"login with {secret}")  # in the message
    log.info("login", detail=f"checksum input {secret}!")  # in a field
    log.info("login", request={"params": {"secret": [secret, (1, secret)]}})  # nested
    try:
        try:
            raise KeyError(secret)
        except KeyError as inner:
            raise RuntimeError(f"token exchange failed for {secret}") from inner
    except RuntimeError:
        log.exception("exchange failed")  # in a chained traceback
        logging.getLogger("kiteconnect").exception("stdlib %s", secret)  # stdlib too

    text = path.read_text(encoding="utf-8")
    assert secret not in text
    lines = read_lines(path)
    assert [line["event"] for line in lines] == [
        f"login with {REDACTED}", "login", "login", "exchange failed", f"stdlib {REDACTED}"]
    assert lines[1]["detail"] == f"checksum input {REDACTED}!"
    assert lines[2]["request"] == {"params": {"secret": [REDACTED, [1, REDACTED]]}}
    for line in lines[3:]:
        assert "RuntimeError: token exchange failed for" in line["exception"]
        assert "KeyError" in line["exception"]
        assert REDACTED in line["exception"]


def test_secret_named_fields_are_redacted_whole(tmp_path: Path) -> None:
    path = configure_logging(tmp_path, "INFO", "k.log")
    get_logger("t").info("session", access_token="tokA1", apiKey="keyB2",
                         headers={"Authorization": "token keyB2:tokA1", "X-Other": "ok"})
    logging.getLogger("std").info("stdlib", extra={"request_token": "reqC3"})
    text = path.read_text(encoding="utf-8")
    for value in ("tokA1", "keyB2", "reqC3"):
        assert value not in text
    first, second = read_lines(path)
    assert first["access_token"] == REDACTED and first["apiKey"] == REDACTED
    assert first["headers"] == {"Authorization": REDACTED, "X-Other": "ok"}
    assert second["request_token"] == REDACTED


def test_registered_secrets_are_redacted_longest_first(tmp_path: Path) -> None:
    path = configure_logging(tmp_path, "INFO", "k.log")
    register_secret("runtimeTok")
    register_secret("runtimeTok-extended-part")
    register_secret("  ")  # blank: ignored, or every space would be redacted
    get_logger("t").info("got runtimeTok-extended-part and runtimeTok", note="a b")
    text = path.read_text(encoding="utf-8")
    assert "runtimeTok" not in text and "extended-part" not in text
    line = read_lines(path)[0]
    assert line["event"] == f"got {REDACTED} and {REDACTED}"
    assert line["note"] == "a b"


def test_the_file_rotates_at_max_bytes_keeping_backups_private(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        configure_logging(tmp_path, "INFO", "k.log", max_bytes=2_000, backups=2)
        log = get_logger("kitesaga.rotate")
        for i in range(200):
            log.info("filler", i=i, pad="x" * 50)
    finally:
        os.umask(old)
    rotated = sorted(p.name for p in tmp_path.iterdir())
    assert rotated == ["k.log", "k.log.1", "k.log.2"]  # two backups, no more
    for name in rotated:
        file = tmp_path / name
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        assert file.stat().st_size < 2_000 + 200  # rotated once it reached max_bytes
        assert all(line["event"] == "filler" for line in read_lines(file))
    numbers = [line["i"] for name in ("k.log.2", "k.log.1", "k.log")
               for line in read_lines(tmp_path / name)]
    assert numbers == list(range(200 - len(numbers), 200))  # the newest lines, in order


def test_no_backups_empties_the_file_instead_of_growing(tmp_path: Path) -> None:
    path = configure_logging(tmp_path, "INFO", "k.log", max_bytes=1_000, backups=0)
    for i in range(100):
        get_logger("t").info("filler", i=i, pad="y" * 40)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.log"]
    assert path.stat().st_size < 1_000 + 200
    assert read_lines(path)[-1]["i"] == 99


def test_rejects_bad_rotation_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"max_bytes.*got 0"):
        configure_logging(tmp_path, "INFO", "k.log", max_bytes=0)
    with pytest.raises(ValueError, match=r"backups.*got -1"):
        configure_logging(tmp_path, "INFO", "k.log", backups=-1)
    with pytest.raises(ValueError, match="LOUD"):
        configure_logging(tmp_path, "INFO", "k.log", console_level="LOUD")


def test_console_is_plain_when_not_a_tty_and_redacted(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "tg-77:SECRETbot")
    monkeypatch.setenv("DASHBOARD_TOKEN", "dash-SECRET-41")
    stream = io.StringIO()
    path = configure_logging(tmp_path, "INFO", "k.log", console_level="WARNING",
                             console_stream=stream)
    log = get_logger("kitesaga.console")
    log.info("quiet on the console")
    log.warning("posting", url="https://api.telegram.org/bottg-77:SECRETbot/sendMessage",
                header="Bearer dash-SECRET-41", bot_token="other-value")
    text = stream.getvalue()
    assert "quiet on the console" not in text  # below console_level
    assert "posting" in text and "\x1b[" not in text  # plain: no colour codes
    assert "{" not in text.split("posting")[0]  # readable, not JSON
    for secret in ("tg-77:SECRETbot", "dash-SECRET-41", "other-value"):
        assert secret not in text
        assert secret not in path.read_text(encoding="utf-8")
    line = read_lines(path)[-1]
    assert line["url"] == f"https://api.telegram.org/bot{REDACTED}/sendMessage"
    assert line["header"] == f"Bearer {REDACTED}" and line["bot_token"] == REDACTED
    assert [entry["event"] for entry in read_lines(path)] == ["quiet on the console", "posting"]


def test_console_is_coloured_on_a_tty(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", encoding="utf-8") as tty:
            assert tty.isatty()
            configure_logging(tmp_path, "INFO", "k.log", console_level="INFO",
                              console_stream=tty)
            get_logger("kitesaga.tty").error("on the terminal", n=1)
            tty.flush()
            shown = os.read(master, 4096).decode("utf-8", "replace")
    finally:
        os.close(master)
    assert "on the terminal" in shown and "\x1b[" in shown  # ANSI colours
