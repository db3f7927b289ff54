"""``sma_cross``: a fast/slow SMA crossover that is always in the market.

It exists to compare this engine with other backtesting engines on a
strategy everyone implements the same way, so its rules are deliberately
plain:

- direction = +1 when SMA(fast) > SMA(slow), -1 when below; on equality the
  previous direction holds (no cross);
- flat and no working order → one MARKET entry in that direction (the first
  one as soon as both SMAs are ready; after a protective stop closed the
  position, only on the next cross, so a stop-out is not re-entered at once);
- a cross against the open position → ONE MARKET order of
  ``|position| + new size`` in the new direction (the base's ``enter``);
- while the account's ``entries_blocked`` is set, a cross only closes the
  position (``reduce_only``) and the block is recorded.

Sizing: risk ``risk_pct`` % of equity over a stop distance of ``stop_bps``
basis points from the close (defaults 1 % over 100 bps, i.e. 1x notional),
capped by max notional and leverage, floored to the quantity step. The stop
is attached to the order only when ``attach_stop`` is set (``--stop-bps``);
a target at ``tp_r_mult`` R only when that is set (``--tp-r``).
"""

from __future__ import annotations

from typing import Any

from mypy_extensions import mypyc_attr

from laptop_agents.domain.contracts import AccountView
from laptop_agents.domain.models import Candle
from laptop_agents.strategy.base import BaseStrategy
from laptop_agents.strategy.indicators import SMA
from laptop_agents.strategy.params import SmaCrossParams


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class SmaCross(BaseStrategy[SmaCrossParams]):
    """See the module docstring. Its state layout ``sma_cross/1`` is the one
    stores written before the strategy base hold."""

    Params = SmaCrossParams
    kind = "sma_cross"
    state_fields = {"direction": 0, "_last_entry_dir": 0}
    fast: SMA
    slow: SMA
    direction: int
    _last_entry_dir: int

    def indicators(self, params: SmaCrossParams) -> dict[str, Any]:
        return {"fast": SMA(params.fast), "slow": SMA(params.slow)}

    def observe(self, candle: Candle) -> None:
        f, s = self.fast.value, self.slow.value
        if f is not None and s is not None:
            if f > s:
                self.direction = 1
            elif f < s:
                self.direction = -1

    def decide(self, candle: Candle, account: AccountView) -> None:
        d = self.direction
        if d == 0 or account.working_orders:
            return
        pos = account.position_qty
        if pos == 0.0 and d == self._last_entry_dir:
            return  # stopped out: wait for the next cross
        if pos != 0.0 and (pos > 0.0) == (d > 0):
            self._last_entry_dir = d
            return
        p = self.params
        done = self.enter(d, stop_bps=p.stop_bps, attach_stop=p.attach_stop, target_r=p.tp_r_mult,
                          reason="cross" if pos else "initial")  # fmt: skip
        if done != "blocked":
            self._last_entry_dir = 0 if done == "closed" else d
