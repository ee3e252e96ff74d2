"""Command-line flags become configuration: one path, so a flag meets its key's checks."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from actors.config import Config, ConfigError, load_config
from actors.config._load import STATE_DIR_ALIAS

__all__ = ["configure"]


def configure(args: argparse.Namespace, flag_keys: Mapping[str, str]) -> Config:
    """The configuration: ``--config`` file, then environment, then flags.

    Each flag in ``flag_keys`` (argparse attribute -> ``KITESAGA_*`` variable)
    goes through the loader as an environment override, so its value meets the
    same checks as the key it sets; a ConfigError names the flag, not the
    variable. A ``--state-dir`` flag also wins over ``KITESAGA_STATE_DIR``.
    """
    env = dict(os.environ)
    flags: dict[str, str] = {}
    for attr, var in flag_keys.items():
        value = getattr(args, attr, None)
        if value is not None:
            env[var] = str(value)
            flags[var] = "--" + attr.replace("_", "-")
    if getattr(args, "state_dir", None) is not None:
        env.pop(STATE_DIR_ALIAS, None)
    try:
        return load_config(getattr(args, "config", None), env)
    except ConfigError as exc:
        renamed = []
        for line in exc.problems:
            source, sep, rest = line.partition(": ")
            renamed.append(f"{flags.get(source, source)}{sep}{rest}")
        raise ConfigError(renamed) from None
