"""Strategies: a small interface, a host actor, and the reference strategies."""

from actors.strategy._base import Bar, Intent, Strategy, StrategyContext
from actors.strategy._host import StrategyHostActor
from actors.strategy._reference import MomentumStrategy, StraddleStrategy, atm_option

__all__ = ["Bar", "Intent", "MomentumStrategy", "StraddleStrategy", "Strategy",
           "StrategyContext", "StrategyHostActor", "atm_option"]
