"""``kitesaga sim``: the Kite Connect v3 simulator, until Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from actors.cli._flags import configure
from actors.config import Config, state_dir
from actors.kitesim import SimServer
from actors.log import configure_logging, register_secret

__all__ = ["add_sim_parser", "sim"]

_FLAG_KEYS = {"host": "KITESAGA_SIM_HOST", "port": "KITESAGA_SIM_PORT",
              "api_key": "KITESAGA_SIM_API_KEY", "api_secret": "KITESAGA_SIM_API_SECRET",
              "faults": "KITESAGA_SIM_FAULTS", "speed": "KITESAGA_MARKET_SPEED",
              "seed": "KITESAGA_MARKET_SEED"}


def add_sim_parser(sub: Any) -> None:
    """Register ``sim`` and its flags (values are checked by the configuration loader)."""
    p = sub.add_parser("sim", help="serve a Kite Connect v3 simulator until Ctrl-C/SIGTERM")
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--host", metavar="H", help="listen address (sim.host)")
    p.add_argument("--port", metavar="N", help="listen port, 0 = any free one (sim.port)")
    p.add_argument("--api-key", metavar="K", help="the API key it accepts (sim.api_key)")
    p.add_argument("--api-secret", metavar="S", help="the session checksum's secret")
    p.add_argument("--faults", metavar="SPEC",
                   help='injected faults, e.g. "latency_ms=50,error_5xx=0.05" (sim.faults)')
    p.add_argument("--speed", metavar="X", help="simulated seconds per wall second")
    p.add_argument("--seed", metavar="N", help="seed of the market and the fault draws")
    p.set_defaults(func=sim)


def _configure(args: argparse.Namespace) -> Config:
    """The configuration of this command (see :func:`actors.cli._flags.configure`)."""
    return configure(args, _FLAG_KEYS)


def sim(args: argparse.Namespace) -> int:
    """Serve the simulator; exit code 0 after SIGINT/SIGTERM."""
    config = _configure(args)
    try:
        server = SimServer(config)
    except ValueError as exc:
        source = "--faults" if args.faults is not None else "sim.faults"
        raise ValueError(f"{source}: {str(exc).removeprefix('faults: ')}") from None
    register_secret(config.sim.api_secret)
    configure_logging(state_dir(config), config.logging.level, config.logging.file_name)

    def ready(server: SimServer) -> None:
        print(f"kitesaga sim listening on {server.url} (ticker {server.ws_url}), "
              f"api_key={server.api_key}", file=sys.stdout, flush=True)

    server.run_forever(on_ready=ready)
    return 0
