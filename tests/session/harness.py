"""Run the real CLI in a subprocess with one deliberate change, chosen by
``LA_TEST_HARNESS`` (tests only):

- ``scripted:hold``  -- a scripted strategy that opens a long position with a
  market order on the first traded candle and keeps one far-away limit order
  working, so a kill-switch / signal test has something to cancel and flatten;
- ``scripted:lose``  -- buys with a stop one tick under the close on every flat
  candle, so trades lose (fees + stop) and a circuit breaker trips quickly;
- ``agent_fail:N``   -- the real default strategy, but its CVD agent raises on
  every N-th update after warm-up: the session must continue.

Usage: ``python -m tests.session.harness <seed-run flags>`` from the project root.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from laptop_agents.domain.contracts import AccountView, StrategyOutput
from laptop_agents.domain.models import Candle, Event, FundingRate, OrderIntent, OrderType, Side

HARNESS_ENV = "LA_TEST_HARNESS"


class ScriptedStrategy:
    """Deterministic, picklable, no indicators: just enough to create state."""

    def __init__(self, plan: str) -> None:
        self.name = f"scripted-{plan}"
        self.plan = plan
        self.seq = 0

    def warmup(self, candle: Candle) -> None:
        return None

    def on_funding(self, funding: FundingRate) -> None:
        return None

    def on_broker_event(self, event: Event) -> list[Event]:
        return []

    def _id(self, candle: Candle, tag: str) -> str:
        self.seq += 1
        return f"{self.name}-{candle.ts}-{tag}{self.seq}"

    def on_candle(self, candle: Candle, account: AccountView) -> StrategyOutput:
        out = StrategyOutput()
        if account.entries_blocked:
            return out
        if self.plan == "hold":
            if account.position_qty == 0 and not account.working_orders:
                out.intents.append(OrderIntent(self._id(candle, "m"), Side.BUY, OrderType.MARKET, 0.01,
                                               reason="scripted entry"))
            elif account.position_qty != 0 and not account.working_orders:
                out.intents.append(OrderIntent(self._id(candle, "l"), Side.BUY, OrderType.LIMIT, 0.01,
                                               price=round(candle.close * 0.8, 1), reason="scripted far limit"))
        elif self.plan == "lose":
            if account.position_qty == 0 and not account.working_orders:
                out.intents.append(OrderIntent(self._id(candle, "x"), Side.BUY, OrderType.MARKET, 0.05,
                                               stop=round(candle.close - 0.1, 1), reason="scripted loser"))
        return out


def _install_scripted(plan: str) -> None:
    import laptop_agents.strategy as strategy_pkg

    def build_strategy(config: Any, **_: Any) -> ScriptedStrategy:
        return ScriptedStrategy(plan)

    strategy_pkg.build_strategy = build_strategy  # type: ignore[assignment]


def _install_agent_failure(every: int) -> None:
    from laptop_agents.strategy import agents

    original = agents.CvdDivergence.update
    calls = {"n": 0}
    skip = int(os.environ.get("LA_TEST_AGENT_FAIL_SKIP", "0"))

    def update(self: Any, high: float, low: float, close: float, volume: float) -> None:
        calls["n"] += 1
        n = calls["n"] - skip
        if n > 0 and n % every == 0:
            raise RuntimeError(f"injected agent failure #{n // every}")
        original(self, high, low, close, volume)

    agents.CvdDivergence.update = update  # type: ignore[method-assign]


def install(spec: str) -> None:
    kind, _, arg = spec.partition(":")
    if kind == "scripted":
        _install_scripted(arg or "hold")
    elif kind == "agent_fail":
        _install_agent_failure(int(arg or "3"))
    elif kind:
        raise SystemExit(f"unknown {HARNESS_ENV} {spec!r}")


def main(argv: list[str]) -> int:
    install(os.environ.get(HARNESS_ENV, ""))
    from laptop_agents.cli import main as cli_main
    from laptop_agents.cli import seed_main

    if argv and argv[0] == "--cli":
        return cli_main(argv[1:])
    return seed_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
