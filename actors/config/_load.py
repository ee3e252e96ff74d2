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
from datetime import date, time
from decimal import Decimal, InvalidOperation
from functools import cache, partial
from pathlib import Path
from typing import Any

import holidays

from actors.config._schema import Config, KeySpec

__all__ = ["ConfigError", "env_var_name", "load_config", "spec_of"]

ENV_PREFIX = "KITESAGA_"
STATE_DIR_ALIAS = "KITESAGA_STATE_DIR"
DEFAULTS = "defaults"  # the source named for a value nobody overrode
_NONE_WORDS = frozenset({"none", "off"})
_BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
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
        super().__init__(f"invalid configuration, {len(problems)} problem(s):\n{lines}")


@dataclass(frozen=True, slots=True)
class _Problem:
    source: str
    path: str
    problem: str
    value: Any = _UNSET

    def render(self) -> str:
        where = f"{self.source}: {self.path}: " if self.path else f"{self.source}: "
        shown = repr(self.value) if isinstance(self.value, str) else str(self.value)
        got = "" if self.value is _UNSET else f", got {shown}"
        return f"{where}{self.problem}{got}"


class _InvalidError(Exception):
    """Raised inside coercion; ``args[0]`` lists ``(path, problem, value)``, sources added later."""


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def spec_of(f: Field[Any]) -> KeySpec:
    """The :class:`KeySpec` kept in a schema field's metadata (empty if none)."""
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


def _number(raw: Any, env: bool, kind: str, text_ok: bool = False) -> Decimal:
    """A TOML number (or text where allowed, always from the environment) as a Decimal."""
    allowed = (int, float, str) if text_ok or env else (int, float)
    if isinstance(raw, bool) or not isinstance(raw, allowed):
        raise ValueError(f"must be {kind}")
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise ValueError(f"must be {kind}") from None
    if not value.is_finite():
        raise ValueError(f"must be finite ({kind})")
    return value


def _int(raw: Any, env: bool) -> int:
    value = _number(raw, env, "an integer")
    if value != value.to_integral_value():
        raise ValueError("must be an integer")
    return int(value)


def _float(raw: Any, env: bool) -> float:
    value = float(_number(raw, env, "a number"))
    if not math.isfinite(value):
        raise ValueError("must be finite (a number)")
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


def _iso(kind: type[date] | type[time], pattern: str, label: str) -> Callable[[Any, bool], Any]:
    """A parser for a TOML local date/time, or text of exactly ``pattern``."""
    def parse(raw: Any, env: bool) -> Any:
        if type(raw) is kind and getattr(raw, "tzinfo", None) is None:
            return raw
        text = raw.strip() if isinstance(raw, str) else ""
        if not re.fullmatch(pattern, text):
            raise ValueError(f"must be a {label}")
        try:
            return kind.fromisoformat(text)
        except ValueError:
            raise ValueError(f"must be a valid {label}") from None
    return parse


_SCALARS: dict[Any, Callable[[Any, bool], Any]] = {
    int: _int, float: _float, bool: _bool, str: _str,
    Decimal: partial(_number, kind="a decimal number", text_ok=True),
    date: _iso(date, r"\d{4}-\d{2}-\d{2}", "date YYYY-MM-DD"),
    time: _iso(time, r"\d{2}:\d{2}(:\d{2})?", "time HH:MM or HH:MM:SS"),
}


def _coerce(tp: Any, raw: Any, path: str, env: bool) -> Any:
    """Return ``raw`` as type ``tp`` or raise :class:`_InvalidError` naming every bad part."""
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        if isinstance(raw, str) and raw.strip().lower() in _NONE_WORDS:
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(inner[0], raw, path, env)
    if typing.get_origin(tp) is tuple:
        item_tp = typing.get_args(tp)[0]
        if is_dataclass(item_tp) and env:
            raise _InvalidError([(path, "environment overrides of an array of tables are not "
                                   "supported; set it in the config file", raw)])
        if env:
            raw = [part.strip() for part in raw.split(",")] if raw.strip() else []
        if not isinstance(raw, list):
            raise _InvalidError([(path, "must be an array", raw)])
        items, found = [], []
        for i, item in enumerate(raw):
            try:
                items.append(_coerce(item_tp, item, f"{path}[{i}]", env))
            except _InvalidError as bad:
                found.extend(bad.args[0])
        if found:
            raise _InvalidError(found)
        return tuple(items)
    if isinstance(tp, type) and is_dataclass(tp):
        return _build(tp, raw, path)
    try:
        return _SCALARS[tp](raw, env)
    except ValueError as bad:
        raise _InvalidError([(path, str(bad), raw)]) from None


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
        raise _InvalidError([(path, "must be a table", raw)])
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    found: list[tuple[str, str, Any]] = []
    for key, item in raw.items():
        if key not in known:
            found.append((f"{path}.{key}", "unknown key" + _did_you_mean(key, list(known)), item))
            continue
        try:
            values[key] = _canonical(_coerce(_hints(cls)[key], item, f"{path}.{key}", False),
                                     spec_of(known[key]))
        except _InvalidError as bad:
            found.extend(bad.args[0])
    for name, f in known.items():
        if name not in raw and f.default is MISSING and f.default_factory is MISSING:
            found.append((f"{path}.{name}", "missing required key", _UNSET))
    if found:
        raise _InvalidError(found)
    return cls(**values)


def _file_items(path: Path, problems: list[_Problem]) -> Iterator[tuple[str, str, Any]]:
    source, sections = str(path), _sections()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as bad:
        problems.append(_Problem(source, "", f"cannot read the config file as TOML: {bad}"))
        return
    for section, table in data.items():
        if section not in sections:
            hint = "unknown section" + _did_you_mean(section, list(sections))
            problems.append(_Problem(source, section, hint, table))
        elif not isinstance(table, dict):
            problems.append(_Problem(source, section, f"must be a table [{section}]", table))
        else:
            keys = [f.name for f in fields(sections[section])]
            for key, raw in table.items():
                if key in keys:
                    yield section, key, raw
                else:
                    problems.append(_Problem(source, f"{section}.{key}",
                                             "unknown key" + _did_you_mean(key, keys), raw))


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
                    _check(f"{path}[{i}].{f.name}", getattr(item, f.name), spec_of(f), source, out)
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
    def bad(path: str, problem: str, got: Any) -> None:  # named: the first key overridden
        named = [src(p) for p in [path, *re.findall(r"\b[a-z_]+\.[a-z_]+\b", problem)]]
        out.append(_Problem(next((s for s in named if s != DEFAULTS), DEFAULTS), path, problem,
                            got))

    cal, eng, lim = c.calendar, c.engine, c.rate_limits
    if cal.session_open >= cal.session_close:
        bad("calendar.session_close", f"must be after calendar.session_open "
            f"({cal.session_open})", cal.session_close)
    square_off = c.exits.square_off_at
    if square_off is not None and not cal.session_open < square_off <= cal.session_close:
        bad("exits.square_off_at", "must be within calendar.session_open..calendar."
            f"session_close ({cal.session_open}..{cal.session_close})", square_off)
    if set(cal.extra_holidays) & set(cal.extra_sessions):
        bad("calendar.extra_sessions", "must not repeat a date of calendar.extra_holidays",
            sorted(set(cal.extra_holidays) & set(cal.extra_sessions)))
    markets = list(holidays.list_supported_financial())
    if cal.exchange.strip() and cal.exchange not in markets:
        bad("calendar.exchange", "not a `holidays` financial calendar"
            + _did_you_mean(cal.exchange, markets), cal.exchange)
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
        except _InvalidError as bad:
            problems.extend(_Problem(source, p, msg, v) for p, msg, v in bad.args[0])
            return
        spec = spec_of(next(f for f in fields(sections[section]) if f.name == key))
        chosen[section][key] = (_canonical(value, spec), source)

    if path is not None:
        for section, key, raw in _file_items(path, problems):
            choose(section, key, raw, str(path), False)
    for var, section, key, text in _env_items(env, problems):
        choose(section, key, text, var, True)

    config = Config(**{name: replace(cls(), **{k: v for k, (v, _) in chosen[name].items()})
                       for name, cls in sections.items()})

    def source_of(path_key: str) -> str:
        section, _, key = path_key.partition(".")
        return chosen.get(section, {}).get(key, (None, DEFAULTS))[1]

    for name, cls in sections.items():
        for f in fields(cls):
            _check(f"{name}.{f.name}", getattr(getattr(config, name), f.name), spec_of(f),
                   source_of(f"{name}.{f.name}"), problems)
    _cross_checks(config, source_of, problems)
    if problems:
        raise ConfigError([p.render() for p in problems])
    return config
