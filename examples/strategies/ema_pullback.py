"""EMA pullback: in a trend, buy a dip to the fast EMA (sell a rally to it),
stop a few ATRs away, target a multiple of that risk.

Run it:  laptop-agents backtest candles.csv --strategy examples/strategies/ema_pullback.py:EmaPullback
"""

from __future__ import annotations

from pydantic import Field, model_validator

from laptop_agents.domain.contracts import AccountView
from laptop_agents.domain.models import Candle
from laptop_agents.strategy.base import BaseStrategy, Parameters
from laptop_agents.strategy.indicators import ATR, EMA


class PullbackParams(Parameters):
    fast: int = Field(20, ge=2, le=1000, description="fast EMA in bars: the pullback level")
    slow: int = Field(100, ge=3, le=5000, description="slow EMA in bars: the trend")
    atr: int = Field(14, ge=1, le=1000, description="ATR period in bars")
    stop_atr: float = Field(1.5, gt=0, le=20, description="stop distance from the close, in ATRs")
    target_r: float = Field(2.0, gt=0, le=20, description="target in R (multiples of the stop distance)")
    cooldown: int = Field(10, ge=0, le=10_000, description="bars without a new entry after one")

    @model_validator(mode="after")
    def _ordered(self) -> PullbackParams:
        if self.fast >= self.slow:
            raise ValueError(f"need fast < slow (got {self.fast} and {self.slow})")
        return self


class EmaPullback(BaseStrategy[PullbackParams]):
    """Buys dips to the fast EMA in an uptrend, sells rallies to it in a downtrend."""

    Params = PullbackParams
    state_fields = {"next_entry_bar": 0}  # kept across restarts with the indicators
    fast: EMA
    slow: EMA
    atr: ATR
    next_entry_bar: int

    def indicators(self, p: PullbackParams) -> dict[str, object]:
        return {"fast": EMA(p.fast), "slow": EMA(p.slow), "atr": ATR(p.atr)}

    def decide(self, candle: Candle, account: AccountView) -> None:
        fast, slow, atr = self.fast.value, self.slow.value, self.atr.value
        if fast is None or slow is None or atr is None:
            return  # still warming up
        if account.position_qty or account.working_orders or self.bar < self.next_entry_bar:
            return  # the broker's bracket manages the open position
        p = self.params
        if fast > slow and candle.low <= fast < candle.close:
            done = self.buy(stop=candle.close - p.stop_atr * atr, target_r=p.target_r, reason="pullback")
        elif fast < slow and candle.high >= fast > candle.close:
            done = self.sell(stop=candle.close + p.stop_atr * atr, target_r=p.target_r, reason="pullback")
        else:
            return
        if done == "entered":
            self.next_entry_bar = self.bar + p.cooldown + 1
