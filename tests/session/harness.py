"""Run the real CLI in a subprocess with one deliberate change, chosen by
``LA_TEST_HARNESS`` (tests only):

- ``scripted:hold``  -- a scripted strategy that opens a long position with a
  market order on the first traded candle and keeps one far-away limit order
  working, so a kill-switch / signal test has something to cancel and flatten;
- ``scripted:hold_near`` -- the same with the limit 3 % away (inside an exchange's price band);
- ``scripted:day`` -- a live day at a human pace: an entry and a resting limit (which
  expires) every 20 candles, an exit ten candles later;
- ``scripted:lose``  -- buys with a stop one tick under the close on every flat
  candle, so trades lose (fees + stop) and a circuit breaker trips quickly;
- ``scripted:roundtrip`` -- buys on every flat candle and sells on the next, so
  trades open and close every two candles (alerts, the dashboard's charts);
- ``agent_fail:N``   -- the real default strategy, but its CVD agent raises on
  every N-th update after warm-up: the session must continue;
- ``pause:PHASE``    -- pause once at a start-up phase (see ``_install_pause``)
  after writing ``$LA_TEST_PAUSE_MARKER``, so a test can interrupt it there.

Usage: ``python -m tests.session.harness <seed-run flags>`` from the project root.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from laptop_agents.domain.contracts import AccountView, StrategyOutput
from laptop_agents.domain.events import Decision, Event
from laptop_agents.domain.models import Candle, FundingRate, OrderIntent, OrderType, Side

HARNESS_ENV = "LA_TEST_HARNESS"


class ScriptedStrategy:
    """Deterministic, no indicators: just enough to create state (its id sequence)."""

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

    def snapshot_state(self) -> tuple[Any, ...]:
        return ("scripted/1", self.seq)

    def restore_state(self, state: tuple[Any, ...]) -> None:
        if not isinstance(state, tuple) or len(state) != 2 or state[0] != "scripted/1":
            raise ValueError("not a scripted strategy state")
        self.seq = state[1]

    def _id(self, candle: Candle, tag: str) -> str:
        self.seq += 1
        return f"{self.name}-{candle.ts}-{tag}{self.seq}"

    def on_candle(self, candle: Candle, account: AccountView) -> StrategyOutput:
        out = StrategyOutput()
        if account.entries_blocked and self.plan != "roundtrip":  # roundtrip asks anyway: the broker refuses
            return out
        if self.plan in ("hold", "hold_near"):
            # hold_near: the resting limit within an exchange's price band (live tests)
            far = 0.97 if self.plan == "hold_near" else 0.8
            if account.position_qty == 0 and not account.working_orders:
                out.intents.append(OrderIntent(self._id(candle, "m"), Side.BUY, OrderType.MARKET, 0.01,
                                               reason="scripted entry"))
            elif account.position_qty != 0 and not account.working_orders:
                out.intents.append(OrderIntent(self._id(candle, "l"), Side.BUY, OrderType.LIMIT, 0.01,
                                               price=round(candle.close * far, 1), reason="scripted far limit"))
        elif self.plan == "roundtrip":
            if account.position_qty == 0:
                out.intents.append(OrderIntent(self._id(candle, "o"), Side.BUY, OrderType.MARKET, 0.01,
                                               stop=round(candle.close * 0.9, 1), target=round(candle.close * 1.1, 1),
                                               reason="scripted entry"))
            else:
                out.intents.append(OrderIntent(self._id(candle, "c"), Side.SELL, OrderType.MARKET, 0.01,
                                               reduce_only=True, reason="scripted exit"))
            out.events.append(Decision(candle.ts, "enter" if account.position_qty == 0 else "exit", "scripted"))
        elif self.plan == "day":
            # A simulated day of live trading at a human pace: every 20 candles a
            # market entry with a resting limit below (it expires: a cancel),
            # ten candles later a reduce-only exit of whatever is held.
            minute = candle.ts // 60_000
            if minute % 20 == 0 and account.position_qty == 0:
                out.intents.append(OrderIntent(self._id(candle, "e"), Side.BUY, OrderType.MARKET, 0.01,
                                               reason="scripted entry"))
                out.intents.append(OrderIntent(self._id(candle, "r"), Side.BUY, OrderType.LIMIT, 0.01,
                                               price=round(candle.close * 0.995, 1), expire_ts=candle.ts + 600_000,
                                               reason="scripted resting"))
            elif minute % 20 == 10 and account.position_qty > 0:
                out.intents.append(OrderIntent(self._id(candle, "x"), Side.SELL, OrderType.MARKET,
                                               round(account.position_qty, 4), reduce_only=True,
                                               reason="scripted exit"))
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
    """The default strategy with its CVD agent replaced by one that raises on
    every ``every``-th update. A subclass instance put in the strategy, not a
    patched method: the compiled core (mypyc) calls its own methods directly,
    so patching the class would go unnoticed there."""
    import laptop_agents.strategy as strategy_pkg
    from laptop_agents.strategy import agents

    calls = {"n": 0}
    skip = int(os.environ.get("LA_TEST_AGENT_FAIL_SKIP", "0"))

    class FailingCvd(agents.CvdDivergence):
        __slots__ = ()

        def update(self, high: float, low: float, close: float, volume: float) -> None:
            calls["n"] += 1
            n = calls["n"] - skip
            if n > 0 and n % every == 0:
                raise RuntimeError(f"injected agent failure #{n // every}")
            super().update(high, low, close, volume)

    original = strategy_pkg.build_strategy

    def build_strategy(config: Any, **kw: Any) -> Any:
        strategy = original(config, **kw)
        strategy.cvd_divergence = FailingCvd(strategy.params.cvd)
        return strategy

    strategy_pkg.build_strategy = build_strategy  # type: ignore[assignment]


PAUSE_MARKER_ENV = "LA_TEST_PAUSE_MARKER"
PAUSE_PHASES = ("config", "lock", "store", "source", "signals")


def _pause(phase: str, seconds: float) -> None:
    """Tell the test where we are (a marker file), then wait for its signal."""
    marker = os.environ.get(PAUSE_MARKER_ENV)
    if marker:
        with open(marker, "w", encoding="utf-8") as fh:
            fh.write(phase)
    import time

    time.sleep(seconds)


def _install_pause(phase: str) -> None:
    """Pause once at a start-up phase, so a test can send Ctrl-C exactly there:
    ``config`` (while the heavy imports and the config load run), ``lock``
    (lock held), ``store`` (state store open), ``source`` (source being built),
    ``signals`` (inside the event loop, before the runner's handlers exist)."""
    if phase == "config":
        import laptop_agents.config as config_mod

        load = config_mod.load_config

        def load_config(*a: Any, **kw: Any) -> Any:
            _pause(phase, 60)
            return load(*a, **kw)

        config_mod.load_config = load_config  # type: ignore[assignment]
    elif phase == "lock":
        from laptop_agents.lock import WorkspaceLock

        acquire = WorkspaceLock.acquire

        def acquire_then_pause(self: Any) -> Any:
            result = acquire(self)
            if self.path.name == "lock":
                _pause(phase, 60)
            return result

        WorkspaceLock.acquire = acquire_then_pause  # type: ignore[method-assign]
    elif phase == "store":
        import laptop_agents.engine.recovery as recovery

        open_engine = recovery.open_engine

        def open_engine_paused(*a: Any, **kw: Any) -> Any:
            _pause(phase, 60)
            return open_engine(*a, **kw)

        recovery.open_engine = open_engine_paused  # type: ignore[assignment]
    elif phase == "source":
        import laptop_agents.sources.factory as factory

        build_source = factory.build_source

        def build_source_paused(*a: Any, **kw: Any) -> Any:
            _pause(phase, 60)
            return build_source(*a, **kw)

        factory.build_source = build_source_paused  # type: ignore[assignment]
    elif phase == "signals":
        from laptop_agents.session.runner import AsyncRunner

        install_signals = AsyncRunner._install_signals

        def install_late(self: Any) -> Any:
            # A blocking pause on the loop: the SIGINT sent meanwhile meets
            # asyncio.run's own handler, not the runner's.
            _pause(phase, 2)
            return install_signals(self)

        AsyncRunner._install_signals = install_late  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown pause phase {phase!r}: {', '.join(PAUSE_PHASES)}")


def _install_live_kill(spec: str) -> None:
    """``live_kill:POINT:N`` -- ``kill -9`` this process at the N-th time live
    execution reaches POINT (``committed``: the order's row is durable, not yet
    sent; ``sent``: about to send; ``acked``: the exchange accepted it, the
    acknowledgement not yet recorded; ``booked``: a fill committed, not yet
    journaled; ``any``: whichever comes N-th). Writes ``$LA_TEST_PAUSE_MARKER``
    (if set) with the point first, so the test knows where it died."""
    import signal

    from laptop_agents.session.execution import LiveExecution

    point, _, n = spec.partition(":")
    target = int(n or "1")
    counts: dict[str, int] = {}

    def hook(self: Any, where: str) -> None:
        key = "any" if point == "any" else where
        if key != point:
            return
        counts[key] = counts.get(key, 0) + 1
        if counts[key] == target:
            marker = os.environ.get(PAUSE_MARKER_ENV)
            if marker:
                with open(marker, "w", encoding="utf-8") as fh:
                    fh.write(where)
            os.kill(os.getpid(), signal.SIGKILL)

    LiveExecution.hook = hook  # type: ignore[method-assign]


def install(spec: str) -> None:
    for part in spec.split("+"):  # several changes: "scripted:roundtrip+live_kill:acked:2"
        _install_one(part)


def _install_one(spec: str) -> None:
    kind, _, arg = spec.partition(":")
    if kind == "scripted":
        _install_scripted(arg or "hold")
    elif kind == "agent_fail":
        _install_agent_failure(int(arg or "3"))
    elif kind == "pause":
        _install_pause(arg)
    elif kind == "live_kill":
        _install_live_kill(arg)
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
