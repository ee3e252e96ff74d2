"""kitesaga's one validated configuration.

``load_config(path, env)`` reads the schema defaults, then one TOML file, then
``KITESAGA_<SECTION>_<KEY>`` environment variables, and returns a frozen
:class:`Config` or raises one :class:`ConfigError` listing every problem.
``dump_defaults_toml()`` renders every key, default and meaning as TOML that
``load_config`` reads back to ``Config()``. See ``docs/configuration.md``.
"""

from __future__ import annotations

from dataclasses import Field, fields, is_dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from actors.config._load import ConfigError, env_var_name, load_config, spec_of
from actors.config._schema import (
    CalendarConfig,
    ChargeRate,
    ChargesConfig,
    Config,
    EngineConfig,
    ExitsConfig,
    KeySpec,
    LoggingConfig,
    MarketConfig,
    PaperConfig,
    PricesConfig,
    RateLimitsConfig,
    StrategyConfig,
    UnderlyingConfig,
)

__all__ = [
    "CalendarConfig",
    "ChargeRate",
    "ChargesConfig",
    "Config",
    "ConfigError",
    "EngineConfig",
    "ExitsConfig",
    "KeySpec",
    "LoggingConfig",
    "MarketConfig",
    "PaperConfig",
    "PricesConfig",
    "RateLimitsConfig",
    "StrategyConfig",
    "UnderlyingConfig",
    "dump_defaults_toml",
    "env_var_name",
    "load_config",
    "state_dir",
]


def state_dir(config: Config) -> Path:
    """The engine's state directory, ``~`` expanded and made absolute."""
    return Path(config.engine.state_dir).expanduser().resolve()


def _toml(value: Any) -> str:
    """``value`` as a TOML literal that :func:`load_config` reads back equal."""
    if value is None:
        return '"none"'  # TOML has no null; the loader reads "none" as None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, date | time) and not isinstance(value, datetime):
        return value.isoformat()
    text = str(value)  # str, and Decimal quoted so that it stays exact
    escaped = "".join(c if c.isprintable() and c not in '"\\' else
                      {'"': '\\"', "\\": "\\\\"}.get(c, f"\\u{ord(c):04x}") for c in text)
    return f'"{escaped}"'


def dump_defaults_toml() -> str:
    """Every section and key with its default, meaning and env var, as commented TOML."""
    config = Config()
    lines = ["# kitesaga configuration: every key at its default.",
             "# Each key can also be set by the environment variable named in [brackets].",
             '# Optional keys are disabled with "none". Decimals are quoted so they stay exact.',
             ""]
    for section_field in fields(config):
        section = getattr(config, section_field.name)
        doc = (type(section).__doc__ or "").strip().splitlines()[0]
        lines += [f"# {doc}", f"[{section_field.name}]"]
        tables: list[tuple[Field[Any], tuple[Any, ...]]] = []
        for f in fields(section):
            value = getattr(section, f.name)
            if isinstance(value, tuple) and any(is_dataclass(v) for v in value):
                tables.append((f, value))
                continue
            env_name = env_var_name(section_field.name, f.name)
            lines += [f"# {spec_of(f).doc} [{env_name}]", f"{f.name} = {_toml(value)}"]
        for f, items in tables:
            lines.append(f"# {spec_of(f).doc}; tables in a file replace these wholesale")
            lines += [f"#   {g.name}: {spec_of(g).doc}" for g in fields(items[0])]
            for item in items:
                lines.append(f"[[{section_field.name}.{f.name}]]")
                lines += [f"{g.name} = {_toml(getattr(item, g.name))}" for g in fields(item)]
        lines.append("")
    return "\n".join(lines)
