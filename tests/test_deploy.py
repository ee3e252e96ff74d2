"""Deployment: deploy/ as shipped.

* The example configuration loads, and its drain fits in the program's ``stopwaitsecs``.
* The env-file template names every secret and holds no value.
* A REAL supervisord (pip ``supervisor``) runs deploy/supervisord/kitesaga.conf, with only
  its paths moved into a temporary directory and the rendered env file (the template plus
  a fast, faulty paper market). ``supervisorctl stop`` must drain (SIGTERM, exit 0, no
  saga left open in the journal), ``supervisorctl start`` must recover from the journal
  and trade on, and supervisord must shut down cleanly.
"""

from __future__ import annotations

import configparser
import json
import os
import pwd
import re
import secrets
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from actors._durable import fold
from actors.config import load_config
from actors.journal import Journal
from tests.support import wait_until

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PROGRAM = DEPLOY / "supervisord" / "kitesaga.conf"
EXAMPLE_TOML = DEPLOY / "kitesaga.example.toml"
ENV_TEMPLATE = DEPLOY / "kitesaga.env.example"
ADMIN = DEPLOY / "kitesaga-admin"
SECRETS = ("ZERODHA_API_KEY", "ZERODHA_API_SECRET", "ZERODHA_TOKEN_KEY", "TELEGRAM_BOT_TOKEN",
           "DASHBOARD_TOKEN")
SHUTDOWN_MARGIN_S = 30.0
"""stopwaitsecs >= engine.drain_timeout_s + this (stopping the actors, the summary)."""
BIN = Path(sys.executable).parent
VENV = BIN.parent
SUPERVISORD = BIN / "supervisord"
SUPERVISORCTL = BIN / "supervisorctl"

# The production paths of deploy/, and the user the program runs as.
LAYOUT = ("/opt/kitesaga/venv", "/etc/kitesaga", "/var/lib/kitesaga", "/var/log/kitesaga")
USER_LINE = "user=kitesaga"
ADMIN_USER_TEST = '"$(id -un)" != "kitesaga"'

FAST = {  # a busy, faulty paper market, so that sagas are in flight when the stop comes
    "KITESAGA_ENGINE_MODE": "paper",
    "KITESAGA_METRICS_PORT": "0", "KITESAGA_DASHBOARD_PORT": "0",  # parallel runs
    "KITESAGA_MARKET_SPEED": "300", "KITESAGA_MARKET_SEED": "5",
    "KITESAGA_STRATEGY_MOMENTUM_THRESHOLD_PCT": "0.01",
    "KITESAGA_STRATEGY_MOMENTUM_LOOKBACK_TICKS": "3",
    "KITESAGA_STRATEGY_STRADDLE_EVERY_S": "120",
    "KITESAGA_PAPER_STUCK_RATIO": "0.2", "KITESAGA_PAPER_PARTIAL_FILL_RATIO": "0.3",
    "KITESAGA_PAPER_UNKNOWN_OUTCOME_RATIO": "0.1", "KITESAGA_PAPER_REJECT_RATIO": "0.05",
    "KITESAGA_ENGINE_FILL_TIMEOUT_S": "0.5", "KITESAGA_ENGINE_CANCEL_TIMEOUT_S": "0.5",
    "KITESAGA_ENGINE_POLL_INTERVAL_S": "0.2",
}
MIN_ENDED = 10
"""Sagas the journal must show ended before the stop (and more after the restart)."""
RUNNING_TIMEOUT_S = 60.0
TRAFFIC_TIMEOUT_S = 60.0
CTL_TIMEOUT_S = 30.0
"""Longest wait for a supervisorctl command, beyond the program's own stopwaitsecs."""


def _program() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    parser.read_string(PROGRAM.read_text())
    return parser


def _stop_wait() -> float:
    return float(_program()["program:kitesaga"]["stopwaitsecs"])


# -- the files -------------------------------------------------------------------------


def test_example_config_loads_and_its_drain_fits_the_stop_wait() -> None:
    config = load_config(EXAMPLE_TOML, env={})
    assert config.engine.mode == "paper"  # live is a deliberate switch, after the rehearsal
    assert config.engine.state_dir == "/var/lib/kitesaga"
    assert config.metrics.host == "127.0.0.1" and config.dashboard.host == "127.0.0.1"
    assert config.dashboard.require_token
    program = _program()["program:kitesaga"]
    assert program["stopsignal"] == "TERM"
    stop_wait = float(program["stopwaitsecs"])
    assert stop_wait >= config.engine.drain_timeout_s + SHUTDOWN_MARGIN_S, (
        f"stopwaitsecs={stop_wait:g} leaves too little for a {config.engine.drain_timeout_s:g}"
        f" s drain: supervisord would SIGKILL a draining engine")
    assert program["autorestart"] == "unexpected"
    assert {int(c) for c in program["exitcodes"].split(",")} == {0, 2}
    command = program["command"]
    assert "set -a; . /etc/kitesaga/kitesaga.env;" in command
    assert "exec /opt/kitesaga/venv/bin/kitesaga run --config /etc/kitesaga/kitesaga.toml" \
        in command, "without exec the SIGTERM would reach the shell, not the engine"
    assert program["user"] == "kitesaga" and program["directory"] == "/var/lib/kitesaga"
    guide = (DEPLOY.parent / "docs" / "deploy.md").read_text()
    assert f"command={command}\n" in guide, "docs/deploy.md shows another command"
    assert f"| `stopwaitsecs` | `{program['stopwaitsecs']}` |" in guide


def test_env_template_names_every_secret_and_holds_no_value() -> None:
    text = ENV_TEMPLATE.read_text()
    for name in SECRETS:
        assert re.search(rf"^# {name}=''$", text, re.MULTILINE), f"{name} is not named"
        assert not re.search(rf"^\s*#?\s*(export\s+)?{name}=(?!''$)", text, re.MULTILINE), (
            f"{name} has a value in the template")
    # it sources cleanly with the supervisord command's shell, and exports nothing secret
    done = subprocess.run(["/bin/sh", "-c", f"set -a; . {ENV_TEMPLATE}; set +a; env"],
                          env=_clean_env(), capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0, done.stderr
    exported = {line.partition("=")[0] for line in done.stdout.splitlines()}
    assert not exported & set(SECRETS)
    assert not {k for k in exported if k.startswith("KITESAGA_")}


def test_admin_wrapper_runs_a_command_with_the_env_file_and_the_config(
        tmp_path: Path) -> None:
    deploy = Deployment(tmp_path, tmp_path)
    deploy.render()
    assert os.access(ADMIN, os.X_OK), f"{ADMIN} must be executable"
    done = subprocess.run([str(deploy.admin), "token", "status", "--json"], env=_clean_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    # exit 1 "missing", not 2: ZERODHA_TOKEN_KEY came from the env file; the token file is
    # looked for in the configuration's state dir
    assert done.returncode == 1, (done.stdout, done.stderr)
    status = json.loads(done.stdout)
    assert status["status"] == "missing"
    assert status["token_file"] == str(deploy.state / "access_token.enc")
    assert deploy.token_key not in done.stdout + done.stderr
    usage = subprocess.run([str(deploy.admin)], env=_clean_env(), capture_output=True,
                           text=True, timeout=60, check=False)
    assert usage.returncode == 0 and "usage: kitesaga" in usage.stdout, usage.stderr


# -- a real supervisord ---------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    """This process's environment without any kitesaga setting or secret: the engine
    must get its settings from the rendered files alone."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("KITESAGA_", "ZERODHA_")) and k not in SECRETS}


class Deployment:
    """deploy/ rendered into a temporary root, and supervisord running it."""

    def __init__(self, root: Path, sock_dir: Path) -> None:
        self.root = root
        self.etc = root / "etc"
        self.state = root / "state"
        self.logs = root / "log"
        self.conf_d = root / "conf.d"
        self.conf = root / "supervisord.conf"
        self.sock = sock_dir / "supervisor.sock"  # short: AF_UNIX paths are < 108 bytes
        self.supervisord_log = root / "supervisord.log"
        self.journal = self.state / "journal-paper.sqlite3"
        self.engine_log = self.state / "kitesaga.log"
        self.admin = root / "kitesaga-admin"
        self.dashboard_token = secrets.token_urlsafe(24)
        self.token_key = Fernet.generate_key().decode()
        self.proc: subprocess.Popen[bytes] | None = None

    def render(self) -> None:
        for directory in (self.etc, self.state, self.logs, self.conf_d):
            directory.mkdir(mode=0o700)
        moved = {"/opt/kitesaga/venv": VENV, "/etc/kitesaga": self.etc,
                 "/var/lib/kitesaga": self.state, "/var/log/kitesaga": self.logs}
        assert tuple(moved) == LAYOUT
        program = PROGRAM.read_text()
        toml = EXAMPLE_TOML.read_text()
        for old, new in moved.items():
            assert old in program, f"{PROGRAM} no longer uses {old}: update docs/deploy.md"
            program = program.replace(old, str(new))
            toml = toml.replace(old, str(new))
        admin = ADMIN.read_text()
        for old, new in moved.items():
            admin = admin.replace(old, str(new))
        user = pwd.getpwuid(os.getuid()).pw_name
        assert program.count(USER_LINE) == 1 and admin.count(ADMIN_USER_TEST) == 1
        program = program.replace(USER_LINE, f"user={user}")
        admin = admin.replace(ADMIN_USER_TEST, ADMIN_USER_TEST.replace("kitesaga", user))
        (self.conf_d / "kitesaga.conf").write_text(program)
        self.admin.write_text(admin)
        self.admin.chmod(0o700)
        (self.etc / "kitesaga.toml").write_text(toml)
        env_file = self.etc / "kitesaga.env"
        env_file.touch(mode=0o600)
        lines = {**FAST, "DASHBOARD_TOKEN": self.dashboard_token,
                 "ZERODHA_TOKEN_KEY": self.token_key}
        env_file.write_text(ENV_TEMPLATE.read_text() + "\n# -- test_deploy.py --\n"
                            + "".join(f"{k}='{v}'\n" for k, v in lines.items()))
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        # the shape of Debian's /etc/supervisor/supervisord.conf, in the temporary root
        self.conf.write_text(f"""\
[unix_http_server]
file={self.sock}
chmod=0700

[supervisord]
logfile={self.supervisord_log}
pidfile={self.root / "supervisord.pid"}
childlogdir={self.logs}
loglevel=info

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{self.sock}

[include]
files = {self.conf_d}/*.conf
""")

    def start(self) -> None:
        self.proc = subprocess.Popen([str(SUPERVISORD), "-n", "-c", str(self.conf)],
                                     env=_clean_env(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def ctl(self, *args: str, timeout: float = CTL_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SUPERVISORCTL), "-c", str(self.conf), *args],
                              env=_clean_env(), capture_output=True, text=True,
                              timeout=timeout, check=False)

    def status(self) -> str:
        """The program's state as supervisorctl reports it ("" while it cannot say)."""
        words = self.ctl("status", "kitesaga").stdout.split()
        return words[1] if len(words) > 1 and words[0] == "kitesaga" else ""

    def wait_running(self) -> None:
        try:
            wait_until(lambda: self.status() == "RUNNING", RUNNING_TIMEOUT_S,
                       "kitesaga RUNNING under supervisord")
        except AssertionError:
            raise AssertionError(self.diagnostics()) from None

    def engine_events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log's lines of ``event``, in order."""
        if not self.engine_log.exists():
            return []
        lines = self.engine_log.read_text().split("\n")[:-1]  # whole lines only
        return [r for r in (json.loads(line) for line in lines if f'"{event}"' in line)
                if r.get("event") == event]

    def saga_counts(self) -> tuple[int, int]:
        """(sagas started, sagas ended) in the journal, read through a READ-ONLY
        connection while the engine writes it (WAL: a reader never blocks the writer)."""
        if not self.journal.exists():
            return 0, 0
        uri = f"file:{self.journal}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
            started, ended = conn.execute(
                "SELECT count(DISTINCT CASE WHEN kind = 'saga' THEN saga_id END), "
                "count(DISTINCT CASE WHEN kind = 'ended' THEN saga_id END) "
                "FROM events").fetchone()
        return int(started), int(ended)

    def unfinished_sagas(self) -> list[Any]:
        """The journal folded (only while no engine runs): sagas neither COMPLETED nor
        COMPENSATED."""
        journal = Journal.open(self.journal, "paper")
        try:
            return list(fold(record for _, record in journal.replay()).unfinished)
        finally:
            journal.close()

    def diagnostics(self) -> str:
        parts = [f"status: {self.ctl('status').stdout.strip()!r}"]
        paths = (self.supervisord_log, self.logs / "stdout.log", self.logs / "stderr.log",
                 self.engine_log)
        parts.extend(f"--- {path.name} (tail)\n{path.read_text()[-3000:]}"
                     for path in paths if path.exists())
        return "\n".join(parts)

    def stop_supervisord(self) -> int:
        """Stop the supervisord this test started (SIGTERM: it stops its program first)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=_stop_wait() + CTL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=30)


@contextmanager
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    if not SUPERVISORD.exists():
        pytest.fail(f"{SUPERVISORD} missing: pip install -e '.[test]' (it needs supervisor)")
    with tempfile.TemporaryDirectory(prefix="ks-") as sock_dir:
        deploy = Deployment(tmp_path, Path(sock_dir))
        deploy.render()
        deploy.start()
        try:
            yield deploy
        finally:
            deploy.stop_supervisord()


@pytest.mark.timeout(240)
def test_supervisord_stop_drains_and_start_recovers(tmp_path: Path) -> None:
    started_at = time.monotonic()
    with deployment(tmp_path) as deploy:
        deploy.wait_running()  # autostart=true
        # trade until sagas have ended and some are in flight (the drain has work to do)
        def busy() -> bool:
            started, ended = deploy.saga_counts()
            return ended >= MIN_ENDED and started > ended

        wait_until(busy, TRAFFIC_TIMEOUT_S, f"{MIN_ENDED} sagas ended and one in flight")
        started, ended = deploy.saga_counts()

        stop = deploy.ctl("stop", "kitesaga", timeout=_stop_wait() + CTL_TIMEOUT_S)
        assert "stopped" in stop.stdout, (stop.stdout, stop.stderr, deploy.diagnostics())
        assert deploy.status() == "STOPPED"
        supervisord_log = deploy.supervisord_log.read_text()
        assert "stopped: kitesaga (exit status 0)" in supervisord_log, deploy.diagnostics()
        assert "SIGKILL" not in supervisord_log, "supervisord killed a draining engine"
        stopping = deploy.engine_events("stopping")
        assert [s["reason"] for s in stopping] == ["SIGTERM"]
        assert [s["drained"] for s in deploy.engine_events("engine_stopped")] == [True]
        assert deploy.unfinished_sagas() == [], "a saga was left open by the drain"
        table = (deploy.logs / "stdout.log").read_text()
        assert re.search(r"invariant violations\s+0\s*$", table, re.MULTILINE), table[-2000:]
        _, ended_at_stop = deploy.saga_counts()

        start = deploy.ctl("start", "kitesaga")
        assert "started" in start.stdout, (start.stdout, start.stderr, deploy.diagnostics())
        deploy.wait_running()
        replayed = deploy.engine_events("journal_replayed")
        assert len(replayed) == 2, replayed
        assert replayed[1]["events"] > 0 and replayed[1]["unfinished_sagas"] == 0, replayed[1]
        # the recovered engine trades on
        wait_until(lambda: deploy.saga_counts()[1] >= ended_at_stop + MIN_ENDED,
                   TRAFFIC_TIMEOUT_S, "the restarted engine ends more sagas")

        shutdown = deploy.ctl("shutdown", timeout=_stop_wait() + CTL_TIMEOUT_S)
        assert "Shut down" in shutdown.stdout, (shutdown.stdout, shutdown.stderr)
        assert deploy.proc is not None
        assert deploy.proc.wait(timeout=_stop_wait() + CTL_TIMEOUT_S) == 0
        assert deploy.supervisord_log.read_text().count(
            "stopped: kitesaga (exit status 0)") == 2, deploy.diagnostics()
        assert [s["drained"] for s in deploy.engine_events("engine_stopped")] == [True, True]
        assert deploy.unfinished_sagas() == []
        # the env file reached the engine (its speed), its secret no log
        assert "at 300x" in (deploy.logs / "stdout.log").read_text()
        for path in (deploy.logs / "stdout.log", deploy.logs / "stderr.log", deploy.engine_log,
                     deploy.supervisord_log):
            text = path.read_text()
            assert deploy.dashboard_token not in text and deploy.token_key not in text, path
        assert stat.S_IMODE(deploy.engine_log.stat().st_mode) == 0o600
    print(f"supervisord deployment: {ended_at_stop} sagas before the stop "
          f"({started - ended} in flight just before it was asked), "
          f"{time.monotonic() - started_at:.1f} s")
