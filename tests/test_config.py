"""load_config: defaults, TOML file, environment overrides, validation, docs coverage."""

from __future__ import annotations

import re
import tomllib
import typing
from dataclasses import fields, is_dataclass
from datetime import date, time
from decimal import Decimal
from pathlib import Path

import pytest

from actors.config import (
    ChargeRate,
    Config,
    ConfigError,
    UnderlyingConfig,
    dump_defaults_toml,
    env_var_name,
    load_config,
    state_dir,
)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kitesaga.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path | None, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env or {})
    return caught.value


def test_defaults_load_with_no_file() -> None:
    config = load_config(None, {})
    assert config == Config()
    assert config.engine.initial_cash_rupees == Decimal("1000000")
    assert config.market.underlyings[0].name == "NIFTY"


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), {}) == Config()


def test_toml_overrides_the_defaults_with_typed_values(tmp_path: Path) -> None:
    path = write(tmp_path, """
[engine]
initial_cash_rupees = "500000.50"
max_open_positions = 12
mode = "live"
[market]
speed = 60
start_date = 2026-12-01
start_time = "09:20"
[calendar]
extra_holidays = [2026-12-31, "2027-01-01"]
session_close = 15:29:00
[logging]
level = "debug"
""")
    config = load_config(path, {})
    assert config.engine.initial_cash_rupees == Decimal("500000.50")
    assert isinstance(config.engine.initial_cash_rupees, Decimal)
    assert config.engine.max_open_positions == 12
    assert config.engine.mode == "live"
    assert config.market.speed == 60.0 and isinstance(config.market.speed, float)
    assert config.market.start_date == date(2026, 12, 1)
    assert config.market.start_time == time(9, 20)
    assert config.calendar.extra_holidays == (date(2026, 12, 31), date(2027, 1, 1))
    assert config.calendar.session_close == time(15, 29)
    assert config.logging.level == "DEBUG"  # choices are matched case-insensitively
    assert config.engine.daily_loss_limit_rupees == Decimal("50000")  # untouched: default


def test_environment_beats_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[market]\nspeed = 60.0\nseed = 9\n")
    config = load_config(path, {
        "KITESAGA_MARKET_SPEED": "120",
        "KITESAGA_ENGINE_INITIAL_CASH_RUPEES": "500000",
        "KITESAGA_CALENDAR_EXTRA_HOLIDAYS": "2026-12-31, 2027-01-01",
        "KITESAGA_EXITS_EXIT_ON_EXPIRY_DAY": "no",
        "KITESAGA_STRATEGY_ENABLED": "straddle",
        "KITESAGA_EXITS_SQUARE_OFF_AT": "15:00",
        "UNRELATED": "ignored",
    })
    assert config.market.speed == 120.0
    assert config.market.seed == 9  # the file still applies where the environment is silent
    assert config.engine.initial_cash_rupees == Decimal("500000")
    assert config.calendar.extra_holidays == (date(2026, 12, 31), date(2027, 1, 1))
    assert config.exits.exit_on_expiry_day is False
    assert config.strategy.enabled == ("straddle",)
    assert config.exits.square_off_at == time(15, 0)


def test_state_dir_alias_and_resolution(tmp_path: Path) -> None:
    config = load_config(None, {"KITESAGA_STATE_DIR": str(tmp_path / "a" / ".." / "s")})
    assert config.engine.state_dir == str(tmp_path / "a" / ".." / "s")
    assert state_dir(config) == (tmp_path / "s").resolve()
    assert state_dir(Config()) == Path("~/.local/state/kitesaga").expanduser().resolve()
    assert state_dir(Config()).is_absolute()
    error = problems_of(None, {"KITESAGA_STATE_DIR": "/a", "KITESAGA_ENGINE_STATE_DIR": "/b"})
    assert "KITESAGA_STATE_DIR: engine.state_dir: conflicts with" in str(error)


@pytest.mark.parametrize(("toml", "expected"), [
    ('[engine]\ninitial_cash_rupees = "abc"',
     "engine.initial_cash_rupees: must be a decimal number, got 'abc'"),
    ("[market]\nspeed = -1", "market.speed: must be > 0, got -1.0"),
    ("[engine]\nintial_cash_rupees = 5",
     "engine.intial_cash_rupees: unknown key (did you mean 'initial_cash_rupees'?), got 5"),
    ("[strateg]\nlots = 2", "strateg: unknown section (did you mean 'strategy'?)"),
    ("[engine]\nmax_open_positions = true", "engine.max_open_positions: must be an integer"),
    ("[engine]\nmax_open_positions = 1.5",
     "engine.max_open_positions: must be an integer, got 1.5"),
    ("[engine]\ninitial_cash_rupees = true", "engine.initial_cash_rupees: must be a decimal"),
    ("[engine]\ninitial_cash_rupees = nan", "engine.initial_cash_rupees: must be finite"),
    ('[engine]\ninitial_cash_rupees = "NaN"', "engine.initial_cash_rupees: must be finite"),
    ("[market]\nspeed = inf", "market.speed: must be finite"),
    ('[market]\nstart_time = "25:00"', "market.start_time: must be a valid time HH:MM or HH:MM:SS"),
    ('[market]\nstart_date = "31-12-2026"', "market.start_date: must be a date YYYY-MM-DD"),
    ("[market]\nstart_date = 2026-12-01T10:00:00", "market.start_date: must be a date"),
    ('[engine]\nmode = "papr"', "engine.mode: must be one of paper, live (did you mean 'paper'?)"),
    ('[logging]\nlevel = "LOUD"', "logging.level: must be one of DEBUG"),
    ('[strategy]\nenabled = ["momentum", "scalper"]', "strategy.enabled[1]: must be one of"),
    ('[strategy]\nenabled = ["momentum", "momentum"]', "strategy.enabled[1]: duplicate item"),
    ('[strategy]\nunderlying = "FINNIFTY"', "strategy.underlying: must be the name of one of"),
    ("[paper]\nreject_ratio = 1.5", "paper.reject_ratio: must be <= 1, got 1.5"),
    ('[engine]\nreserve_buffer_pct = "-1"', "engine.reserve_buffer_pct: must be >= 0, got -1"),
    ("[rate_limits]\norders_per_s = 0", "rate_limits.orders_per_s: must be > 0, got 0"),
    ("[engine]\nsaga_deadline_s = 5.0", "engine.saga_deadline_s: must be at least"),
    ("[calendar]\nsession_open = 16:00:00", "calendar.session_close: must be after"),
    ('[calendar]\nexchange = "XNSF"', "calendar.exchange: not a `holidays` financial calendar"),
    ('[logging]\nfile_name = "../x.log"', "logging.file_name: must be a plain file name"),
    ("engine = 5", "engine: must be a table [engine]"),
    ("[market]\nunderlyings = []", "market.underlyings: must not be empty"),
    ('[[charges.rates]]\neffective_from = 2024-10-01\nsegment = "crypto"\n'
     'brokerage_flat_rupees = "20"\nbrokerage_pct = "none"\nstt_buy_pct = "0"\n'
     'stt_sell_pct = "0.1"\ntransaction_pct = "0.03"\nsebi_rupees_per_crore = "10"\n'
     'stamp_buy_pct = "0.003"\ngst_pct = "18"',
     "charges.rates[0].segment: must be one of options, futures, equity_intraday"),
    ('[[market.underlyings]]\nname = "NIFTY"\nspot_rupees = "24000"\n'
     'annual_volatility = "0.14"\nstrike_step_rupees = "50"\nlot_size = 65\n'
     "expiry_weekday = 5\ntoken_base = 1",
     "market.underlyings[0].expiry_weekday: must be <= 4, got 5"),
])
def test_a_bad_file_value_is_named_with_its_source(tmp_path: Path, toml: str,
                                                   expected: str) -> None:
    path = write(tmp_path, toml)
    error = problems_of(path)
    assert isinstance(error, ValueError)
    assert f"{path}: {expected}" in str(error), str(error)


@pytest.mark.parametrize(("env", "expected"), [
    ({"KITESAGA_MARKET_SPEED": "-1"}, "KITESAGA_MARKET_SPEED: market.speed: must be > 0, got -1.0"),
    ({"KITESAGA_MARKET_SPEED": "fast"}, "KITESAGA_MARKET_SPEED: market.speed: must be a number"),
    ({"KITESAGA_ENGINE_INITIAL_CASH_RUPEES": "NaN"}, "engine.initial_cash_rupees: must be finite"),
    ({"KITESAGA_ENGINE_MAX_OPEN_POSITIONS": "1.5"},
     "engine.max_open_positions: must be an integer, got '1.5'"),
    ({"KITESAGA_EXITS_EXIT_ON_EXPIRY_DAY": "maybe"}, "exits.exit_on_expiry_day: must be true or"),
    ({"KITESAGA_CALENDAR_EXTRA_HOLIDAYS": "2026-12-31,2026-13-01"},
     "calendar.extra_holidays[1]: must be a valid date YYYY-MM-DD, got '2026-13-01'"),
    ({"KITESAGA_MARKET_SPEEED": "2"}, "did you mean 'KITESAGA_MARKET_SPEED'?"),
    ({"KITESAGA_MARKET_UNDERLYINGS": "NIFTY"},
     "market.underlyings: environment overrides of an array of tables are not supported"),
    ({"KITESAGA_CHARGES_RATES": "x"}, "charges.rates: environment overrides of an array"),
])
def test_a_bad_environment_value_is_named_with_its_variable(env: dict[str, str],
                                                            expected: str) -> None:
    assert expected in str(problems_of(None, env))


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, '[engine]\ninitial_cash_rupees = "abc"\nmode = "x"\n'
                           "[market]\nspeed = -1\nseeed = 2\n"
                           "[calendar]\nsession_close = 09:00:00\n")
    error = problems_of(path, {"KITESAGA_RATE_LIMITS_ORDERS_PER_DAY": "0"})
    text = str(error)
    for part in ("engine.initial_cash_rupees", "engine.mode", "market.speed", "market.seeed",
                 "calendar.session_close", "KITESAGA_RATE_LIMITS_ORDERS_PER_DAY"):
        assert part in text, part
    assert len(error.problems) >= 6
    assert all(line.startswith((f"{path}: ", "KITESAGA_")) for line in error.problems)


def test_optional_keys_are_disabled_with_none_or_off(tmp_path: Path) -> None:
    path = write(tmp_path, '[exits]\nstop_loss_pct = "none"\nsquare_off_at = "off"\n')
    config = load_config(path, {"KITESAGA_EXITS_TAKE_PROFIT_PCT": "None"})
    assert config.exits.stop_loss_pct is None
    assert config.exits.square_off_at is None
    assert config.exits.take_profit_pct is None
    assert config.exits.trail_giveback_pct == Decimal("8")
    assert "exits.stop_loss_pct: must be > 0" in str(
        problems_of(write(tmp_path, "[exits]\nstop_loss_pct = 0\n")))


def test_arrays_of_tables_replace_the_defaults_wholesale(tmp_path: Path) -> None:
    path = write(tmp_path, """
[[market.underlyings]]
name = "FINNIFTY"
spot_rupees = "23000"
annual_volatility = "0.15"
strike_step_rupees = "50"
lot_size = 65
expiry_weekday = 1
token_base = 30000

[strategy]
underlying = "FINNIFTY"

[[charges.rates]]
effective_from = 2025-01-01
segment = "options"
brokerage_flat_rupees = "20"
brokerage_pct = "none"
stt_buy_pct = "0"
stt_sell_pct = "0.1"
transaction_pct = "0.03503"
sebi_rupees_per_crore = "10"
stamp_buy_pct = "0.003"
gst_pct = "18"
""")
    config = load_config(path, {})
    assert config.market.underlyings == (UnderlyingConfig(
        "FINNIFTY", Decimal("23000"), Decimal("0.15"), Decimal("50"), 65, 1, 30_000),)
    assert config.charges.rates == (ChargeRate(
        date(2025, 1, 1), "options", Decimal("20"), None, Decimal("0"), Decimal("0.1"),
        Decimal("0.03503"), Decimal("10"), Decimal("0.003"), Decimal("18")),)


def test_a_table_missing_a_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, '[[market.underlyings]]\nname = "NIFTY"\nlot_sise = 65\n')
    text = str(problems_of(path))
    assert "market.underlyings[0].lot_size: missing required key" in text
    assert "market.underlyings[0].lot_sise: unknown key (did you mean 'lot_size'?)" in text


def test_unreadable_and_invalid_files_are_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    assert f"{missing}: cannot read" in str(problems_of(missing))
    broken = write(tmp_path, "[engine\nmode = ")
    assert f"{broken}: cannot read the config file as TOML" in str(problems_of(broken))


def test_defaults_round_trip_through_dump(tmp_path: Path) -> None:
    text = dump_defaults_toml()
    tomllib.loads(text)  # valid TOML
    assert load_config(write(tmp_path, text), {}) == Config()
    assert "# paper account size [KITESAGA_ENGINE_INITIAL_CASH_RUPEES]" in text
    assert text.splitlines().count("[[market.underlyings]]") == len(Config().market.underlyings)


def _schema_keys() -> list[tuple[str, str, object, bool]]:
    """(section, key, default, env-settable) for every key, nested table keys included."""
    config, keys = Config(), []
    for section in fields(config):
        value = getattr(config, section.name)
        for f in fields(value):
            default = getattr(value, f.name)
            nested = isinstance(default, tuple) and any(is_dataclass(d) for d in default)
            keys.append((section.name, f.name, default, not nested))
            if nested:
                item_type = typing.get_type_hints(type(value))[f.name].__args__[0]
                keys += [(section.name, g.name, None, False) for g in fields(item_type)]
    return keys


def test_docs_cover_every_key_with_its_env_var() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    blocks = dict(re.findall(r"^### `\[(\w+)\]`(.*?)(?=^### |\Z)", docs, re.M | re.S))
    assert set(blocks) == {f.name for f in fields(Config)}
    missing = []
    for section, key, _, env_ok in _schema_keys():
        rows = [line for line in blocks[section].splitlines() if line.startswith(f"| `{key}` |")]
        if not rows or (env_ok and f"`{env_var_name(section, key)}`" not in rows[0]):
            missing.append(f"{section}.{key}")
    assert not missing, f"docs/configuration.md lacks: {missing}"


def test_docs_example_is_a_valid_config(tmp_path: Path) -> None:
    docs = DOCS.read_text(encoding="utf-8")
    example = re.search(r"```toml\n(# kitesaga.toml.*?)```", docs, re.S)
    assert example is not None
    config = load_config(write(tmp_path, example.group(1)), {})
    assert config.exits.trail_activation_pct is None
    assert len(config.market.underlyings) == 1
