"""Load the configuration: schema defaults, then one TOML file, then the environment.

Every value is coerced by its field's type hint and checked against its
:class:`~actors.config._schema.KeySpec`; cross-key rules follow. All problems
are collected and raised together as one :class:`ConfigError`.
"""

from __future__ import annotations

import difflib
import math
import operator
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, fields, is_dataclass, replace
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

import holidays

from actors.config._schema import Config, KeySpec

__all__ = ["ConfigError", "dump_defaults_toml", "env_var_name", "load_config", "state_dir"]

ENV_PREFIX = "KITESAGA_"
STATE_DIR_ALIAS = "KITESAGA_STATE_DIR"
DEFAULTS = "defaults"  # the source named for a value nobody overrode
_NONE_WORDS = frozenset({"none", "off"})
_BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_RE = re.compile(r"\d{2}:\d{2}(:\d{2})?")
_UNSET: Any = object()


class ConfigError(ValueError):
    """Everything wrong with one load of the configuration.

    Contract: ``problems`` holds one line per problem, each
    ``<source>: <section>.<key>: <problem>, got <value>`` where source is the
    file path, the environment variable or ``defaults``; ``str()`` lists them all.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} problems):\n{lines}")


@dataclass(frozen=True, slots=True)
class _Problem:
    source: str
    path: str
    problem: str
    value: Any = _UNSET

    def render(self) -> str:
        where = f"{self.source}: {self.path}: " if self.path else f"{self.source}: "
        got = "" if self.value is _UNSET else f", got {_show(self.value)}"
        return f"{where}{self.problem}{got}"


class _Invalid(Exception):
    """Raised inside coercion: ``(path, problem, value)`` triples, sources added later."""

    def __init__(self, found: list[tuple[str, str, Any]]) -> None:
        super().__init__(found)
        self.found = found


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _spec(f: Field[Any]) -> KeySpec:
    spec = f.metadata.get("spec")
    return spec if isinstance(spec, KeySpec) else KeySpec()


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@cache
def _sections() -> dict[str, type]:
    return {f.name: _hints(Config)[f.name] for f in fields(Config)}


def env_var_name(section: str, key: str) -> str:
    """The environment variable that overrides ``section.key``."""
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


# --- coercion: raw TOML or environment text -> the field's type ----------------------------

def _int(raw: Any, env: bool) -> int:
    if env:
        number = _decimal(raw, env)
        if number != number.to_integral_value():
            raise ValueError("must be an integer")
        return int(number)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError("must be an integer")
    if isinstance(raw, float) and not raw.is_integer():
        raise ValueError("must be an integer")
    return int(raw)


def _float(raw: Any, env: bool) -> float:
    if env:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("must be a number") from None
    elif isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError("must be a number")
    else:
        value = float(raw)
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _decimal(raw: Any, env: bool) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError("must be a decimal number")
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise ValueError("must be a decimal number") from None
    if not value.is_finite():
        raise ValueError("must be a finite decimal number")
    return value


def _bool(raw: Any, env: bool) -> bool:
    if env and raw.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[raw.strip().lower()]
    if not env and isinstance(raw, bool):
        return raw
    raise ValueError("must be true or false" + (" (or yes/no, 1/0)" if env else ""))


def _str(raw: Any, env: bool) -> str:
    if not isinstance(raw, str):
        raise ValueError("must be a string")
    return raw


def _date(raw: Any, env: bool) -> date:
    if type(raw) is date:
        return raw
    if isinstance(raw, str) and _DATE_RE.fullmatch(raw.strip()):
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            pass  # a well-formed but impossible date: reported below
    raise ValueError("must be a date YYYY-MM-DD")


def _time(raw: Any, env: bool) -> time:
    if isinstance(raw, time) and raw.tzinfo is None:
        return raw
    if isinstance(raw, str) and _TIME_RE.fullmatch(raw.strip()):
        try:
            return time.fromisoformat(raw.strip())
        except ValueError:
            pass  # e.g. 25:00: reported below
    raise ValueError("must be a time HH:MM or HH:MM:SS")


_SCALARS: dict[Any, Callable[[Any, bool], Any]] = {
    int: _int, float: _float, Decimal: _decimal, bool: _bool, str: _str, date: _date, time: _time,
}


def _coerce(tp: Any, raw: Any, path: str, env: bool) -> Any:
    """Return ``raw`` as type ``tp`` or raise :class:`_Invalid` naming every bad part."""
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        if isinstance(raw, str) and raw.strip().lower() in _NONE_WORDS:
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(inner[0], raw, path, env)
    if typing.get_origin(tp) is tuple:
        item_tp = typing.get_args(tp)[0]
        if is_dataclass(item_tp) and env:
            raise _Invalid([(path, "environment overrides of an array of tables are not "
                                   "supported; set it in the config file", raw)])
        if env:
            raw = [part.strip() for part in raw.split(",")] if raw.strip() else []
        if not isinstance(raw, list):
            raise _Invalid([(path, "must be an array", raw)])
        items, found = [], []
        for i, item in enumerate(raw):
            try:
                items.append(_coerce(item_tp, item, f"{path}[{i}]", env))
            except _Invalid as bad:
                found.extend(bad.found)
        if found:
            raise _Invalid(found)
        return tuple(items)
    if isinstance(tp, type) and is_dataclass(tp):
        return _build(tp, raw, path)
    try:
        return _SCALARS[tp](raw, env)
    except ValueError as bad:
        raise _Invalid([(path, str(bad), raw)]) from None


def _canonical(value: Any, spec: KeySpec) -> Any:
    """Match ``choices`` case-insensitively: ``info`` becomes ``INFO``."""
    by_lower = {c.lower(): c for c in spec.choices}
    if isinstance(value, str):
        return by_lower.get(value.lower(), value)
    if isinstance(value, tuple) and by_lower:
        return tuple(by_lower.get(v.lower(), v) if isinstance(v, str) else v for v in value)
    return value


def _build(cls: type, raw: Any, path: str) -> Any:
    """One table of an array of tables (e.g. ``[[market.underlyings]]``) as ``cls``."""
    if not isinstance(raw, dict):
        raise _Invalid([(path, "must be a table", raw)])
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    found: list[tuple[str, str, Any]] = []
    for key, item in raw.items():
        if key not in known:
            found.append((f"{path}.{key}", "unknown key" + _did_you_mean(key, list(known)), item))
            continue
        try:
            values[key] = _canonical(_coerce(_hints(cls)[key], item, f"{path}.{key}", False),
                                     _spec(known[key]))
        except _Invalid as bad:
            found.extend(bad.found)
    for name, f in known.items():
        if name not in raw and f.default is MISSING and f.default_factory is MISSING:
            found.append((f"{path}.{name}", "missing required key", _UNSET))
    if found:
        raise _Invalid(found)
    return cls(**values)


# --- sources: the file and the environment ------------------------------------------------

def _file_items(path: Path, problems: list[_Problem]) -> Iterator[tuple[str, str, Any]]:
    source, sections = str(path), _sections()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as bad:
        problems.append(_Problem(source, "", f"cannot read the config file: {bad.strerror}"))
        return
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as bad:
        problems.append(_Problem(source, "", f"not valid TOML: {bad}"))
        return
    for section, table in data.items():
        if section not in sections:
            hint = _did_you_mean(section, list(sections))
            problems.append(_Problem(source, section, "unknown section" + hint, table))
        elif not isinstance(table, dict):
            problems.append(_Problem(source, section, f"must be a table [{section}]", table))
        else:
            keys = [f.name for f in fields(sections[section])]
            for key, raw in table.items():
                if key in keys:
                    yield section, key, raw
                else:
                    hint = _did_you_mean(key, keys)
                    problems.append(_Problem(source, f"{section}.{key}", "unknown key" + hint,
                                             raw))


def _env_items(env: Mapping[str, str],
               problems: list[_Problem]) -> Iterator[tuple[str, str, str, str]]:
    """``(variable, section, key, text)`` for each ``KITESAGA_*`` variable."""
    sections = _sections()
    names = {env_var_name(s, f.name): (s, f.name) for s, cls in sections.items()
             for f in fields(cls)}
    for var in sorted(v for v in env if v.startswith(ENV_PREFIX)):
        if var == STATE_DIR_ALIAS:
            other = env.get(env_var_name("engine", "state_dir"))
            if other is not None and other != env[var]:
                problems.append(_Problem(var, "engine.state_dir", "conflicts with "
                                         f"{env_var_name('engine', 'state_dir')}={other!r}",
                                         env[var]))
            else:
                yield var, "engine", "state_dir", env[var]
        elif var in names:
            yield var, *names[var], env[var]
        else:
            rest = var.removeprefix(ENV_PREFIX).lower()
            hint = _did_you_mean(var.upper(), [*names, STATE_DIR_ALIAS])
            problems.append(_Problem(var, rest, "unknown setting; overrides are named "
                                     "KITESAGA_<SECTION>_<KEY>" + hint, env[var]))


# --- validation ---------------------------------------------------------------------------

def _check(path: str, value: Any, spec: KeySpec, source: str, out: list[_Problem]) -> None:
    """Apply ``spec`` (and the specs of nested tables) to a coerced value."""
    def bad(where: str, problem: str, got: Any) -> None:
        out.append(_Problem(source, where, problem, got))

    if value is None:
        return
    if isinstance(value, tuple):
        if spec.nonempty and not value:
            bad(path, "must not be empty", "[]")
        seen: set[Any] = set()
        for i, item in enumerate(value):
            if is_dataclass(item):
                for f in fields(item):
                    _check(f"{path}[{i}].{f.name}", getattr(item, f.name), _spec(f), source, out)
                continue
            if item in seen:
                bad(f"{path}[{i}]", "duplicate item", item)
            seen.add(item)
            _check(f"{path}[{i}]", item, spec, source, out)
        return
    if isinstance(value, str):
        if spec.nonempty and not value.strip():
            bad(path, "must not be empty", value)
        if spec.choices and value not in spec.choices:
            bad(path, f"must be one of {', '.join(spec.choices)}"
                + _did_you_mean(value, list(spec.choices)), value)
    elif isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        for limit, sign, holds in ((spec.gt, ">", operator.gt), (spec.ge, ">=", operator.ge),
                                   (spec.lt, "<", operator.lt), (spec.le, "<=", operator.le)):
            if limit is not None and not holds(value, limit):
                bad(path, f"must be {sign} {limit}", value)
                return


def _cross_checks(c: Config, src: Callable[[str], str], out: list[_Problem]) -> None:
    """Rules that relate two or more keys."""
    def bad(path: str, problem: str, got: Any) -> None:
        out.append(_Problem(src(path), path, problem, got))

    cal, eng, lim = c.calendar, c.engine, c.rate_limits
    if cal.session_open >= cal.session_close:
        bad("calendar.session_close", f"must be after calendar.session_open "
            f"({cal.session_open})", cal.session_close)
    square_off = c.exits.square_off_at
    if square_off is not None and not cal.session_open < square_off <= cal.session_close:
        bad("exits.square_off_at", "must be within the session "
            f"({cal.session_open}..{cal.session_close})", square_off)
    if set(cal.extra_holidays) & set(cal.extra_sessions):
        bad("calendar.extra_sessions", "must not repeat a date of calendar.extra_holidays",
            sorted(set(cal.extra_holidays) & set(cal.extra_sessions)))
    if cal.exchange.strip() and cal.exchange not in holidays.list_supported_financial():
        bad("calendar.exchange", "not a `holidays` financial calendar"
            + _did_you_mean(cal.exchange, list(holidays.list_supported_financial())),
            cal.exchange)
    if eng.saga_deadline_s < eng.fill_timeout_s + eng.cancel_timeout_s:
        bad("engine.saga_deadline_s", "must be at least engine.fill_timeout_s + "
            f"engine.cancel_timeout_s ({eng.fill_timeout_s + eng.cancel_timeout_s})",
            eng.saga_deadline_s)
    if not lim.orders_per_s <= lim.orders_per_min <= lim.orders_per_day:
        bad("rate_limits.orders_per_min", "must be between rate_limits.orders_per_s and "
            "rate_limits.orders_per_day", lim.orders_per_min)
    names = [u.name for u in c.market.underlyings]
    for label, values in (("name", names), ("token_base",
                                            [u.token_base for u in c.market.underlyings])):
        if len(set(values)) != len(values):
            bad("market.underlyings", f"each {label} must be unique", values)
    if c.strategy.underlying not in names:
        bad("strategy.underlying", "must be the name of one of market.underlyings"
            + _did_you_mean(c.strategy.underlying, names), c.strategy.underlying)
    rows = [(r.segment, r.effective_from) for r in c.charges.rates]
    if len(set(rows)) != len(rows):
        bad("charges.rates", "each (segment, effective_from) must be unique",
            [f"{s}@{d}" for s, d in rows])
    name = c.logging.file_name
    if "/" in name or "\\" in name or name in (".", ".."):
        bad("logging.file_name", "must be a plain file name inside the state dir", name)


# --- the public entry points --------------------------------------------------------------

def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Defaults, overridden by the TOML file at ``path``, overridden by ``env``.

    ``env`` defaults to :data:`os.environ`. Raises :class:`ConfigError` listing
    every problem (unknown names, bad types, out-of-range values, broken rules).
    """
    env = os.environ if env is None else env
    problems: list[_Problem] = []
    sections = _sections()
    chosen: dict[str, dict[str, tuple[Any, str]]] = {name: {} for name in sections}

    def choose(section: str, key: str, raw: Any, source: str, from_env: bool) -> None:
        path_key = f"{section}.{key}"
        try:
            value = _coerce(_hints(sections[section])[key], raw, path_key, from_env)
        except _Invalid as bad:
            problems.extend(_Problem(source, p, msg, v) for p, msg, v in bad.found)
            return
        spec = _spec(next(f for f in fields(sections[section]) if f.name == key))
        chosen[section][key] = (_canonical(value, spec), source)

    if path is not None:
        for section, key, raw in list(_file_items(path, problems)):
            choose(section, key, raw, str(path), False)
    for var, section, key, text in list(_env_items(env, problems)):
        choose(section, key, text, var, True)

    config = Config(**{
        name: replace(cls(), **{k: v for k, (v, _) in chosen[name].items()})
        for name, cls in sections.items()
    })

    def source_of(path_key: str) -> str:
        section, _, key = path_key.partition(".")
        return chosen.get(section, {}).get(key, (None, DEFAULTS))[1]

    for name, cls in sections.items():
        for f in fields(cls):
            _check(f"{name}.{f.name}", getattr(getattr(config, name), f.name), _spec(f),
                   source_of(f"{name}.{f.name}"), problems)
    _cross_checks(config, source_of, problems)
    if problems:
        raise ConfigError([p.render() for p in problems])
    return config


def state_dir(config: Config) -> Path:
    """The engine's state directory, ``~`` expanded and made absolute."""
    return Path(config.engine.state_dir).expanduser().resolve()


def _toml(value: Any) -> str:
    """``value`` as a TOML literal that :func:`load_config` reads back equal."""
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, date | time) and not isinstance(value, datetime):
        return value.isoformat()
    text = str(value)  # str and Decimal (quoted: exact)
    escaped = "".join(c if c.isprintable() and c not in '"\\' else
                      {'"': '\\"', "\\": "\\\\"}.get(c, f"\\u{ord(c):04x}") for c in text)
    return f'"{escaped}"'


def dump_defaults_toml() -> str:
    """Every section and key with its default and meaning, as commented TOML."""
    config = Config()
    lines = ["# kitesaga configuration: every key at its default.",
             "# Each key can also be set by the environment variable named beside it.",
             "# Optional keys are disabled with \"none\". Decimals are quoted: exact.", ""]
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
            lines += [f"# {_spec(f).doc} [{env_name}]", f"{f.name} = {_toml(value)}"]
        for f, items in tables:
            lines.append(f"# {_spec(f).doc}; a file's tables replace these defaults wholesale.")
            lines += [f"#   {g.name}: {_spec(g).doc}" for g in fields(items[0])]
            for item in items:
                lines.append(f"[[{section_field.name}.{f.name}]]")
                lines += [f"{g.name} = {_toml(getattr(item, g.name))}" for g in fields(item)]
        lines.append("")
    return "\n".join(lines)
