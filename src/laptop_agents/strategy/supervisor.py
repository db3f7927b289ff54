"""The Supervisor: runs the agents in a fixed order on every closed candle.

It implements the ``Strategy`` protocol of ``domain/contracts.py``. Two phases
per candle:

- *observe*: every agent that keeps indicators advances them (always, even
  while a position is open, so indicators never skip a candle);
- *decide*: only when the account is flat and no working order exists (the
  broker owns exits through the bracket attached to the entry), a setup is
  looked for, assessed, gated and turned into one entry ``OrderIntent``.

Agent isolation: each agent call is guarded on its own. An exception records
an ``agent_error`` event naming the agent and the candle produces no entry;
the other agents still advance their indicators, and the next candle is
processed normally. A cancel of an expired pending entry is still issued on
such a candle, because cancelling only reduces risk.

Events: a ``decision`` event for each entry, cancel and block, but a block is
not repeated while its cause persists: a block by the account's or market's
state (circuit breaker ``entries_blocked``, funding HALT or NO_TRADE) is
reported once until that state ends, and another block is not repeated while
the same setup keeps being blocked for the same reason on consecutive
candles. So a circuit-breaker day costs one event, not one per setup seen.
Quiet candles produce no event at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mypy_extensions import mypyc_attr

from laptop_agents.domain.contracts import AccountView, Intent, StrategyOutput
from laptop_agents.domain.events import Event, OrderEvent
from laptop_agents.domain.models import (
    CancelIntent,
    Candle,
    FundingRate,
    Instrument,
    OrderIntent,
    OrderType,
    Side,
)
from laptop_agents.strategy.agents import (
    DIVERGENCE_NAMES,
    GATE_HALT,
    GATE_NO_TRADE,
    LIMIT,
    TREND_NAMES,
    CvdDivergence,
    DerivativesFlows,
    ExecutionRiskSentinel,
    JournalCoach,
    MarketIntake,
    PendingTrigger,
    RiskGate,
    Setup,
    SetupSignal,
)
from laptop_agents.strategy.base import StrategyCore
from laptop_agents.strategy.emit import agent_error, decision_event
from laptop_agents.strategy.params import SupervisorParams

# Block reasons after which the sentinel's cooldown starts (a judgement on the
# setup); halts and circuit-breaker blocks are the account's state instead.
COOLDOWN_REASONS = frozenset(
    {
        "funding_no_trade",
        "rr_below_min",
        "bad_bracket",
        "max_notional",
        "max_leverage",
        "zero_stop_distance",
        "no_equity",
        "size_below_min_qty",
        "size_below_min_notional",
        "bad_price",
        "order_rejected",
    }
)

# Blocks caused by a state of the account or the market rather than by the
# setup: reported once when the state is first met, then silent until it ends.
STATE_BLOCKS = frozenset({"entries_blocked", "funding_halt", "funding_no_trade"})

# First element of a snapshot_state tuple: names the layout, so a state of
# another strategy class or layout version is refused instead of mis-read.
_STATE_TAG = "supervisor/1"


@mypyc_attr(serializable=True, allow_interpreted_subclasses=True)
class Supervisor(StrategyCore):
    """The default strategy (and its presets): see the module docstring.

    ``risk_pct`` is a percent; ``max_notional`` (USD) and ``max_leverage`` come
    from the risk configuration. ``name`` labels events; client ids are
    ``f"{prefix}-{candle.ts}-{seq}"`` so a replay yields the same ids.
    """

    __slots__ = (
        "_last_block",
        "_state_block",
        "cvd_divergence",
        "derivatives_flows",
        "execution_risk_sentinel",
        "market_intake",
        "pending_trigger",
        "risk_gate",
        "setup_signal",
        "warmup_errors",
    )

    def __init__(
        self,
        params: SupervisorParams,
        instrument: Instrument,
        *,
        risk_pct: float | None = None,
        max_notional: float = 200_000.0,
        max_leverage: float = 20.0,
        name: str = "default",
    ) -> None:
        super().__init__(params, instrument, risk_pct=risk_pct, max_notional=max_notional,
                         max_leverage=max_leverage, name=name)  # fmt: skip
        rp = self.risk_pct
        self.market_intake = MarketIntake(params.market)
        self.derivatives_flows = DerivativesFlows(params.derivatives_gates, params.engine)
        self.cvd_divergence = CvdDivergence(params.cvd)
        self.setup_signal = SetupSignal(params.setups, params.market.block_regimes, instrument.tick_size)
        self.execution_risk_sentinel = ExecutionRiskSentinel(
            params.engine, rp, instrument, max_notional, max_leverage
        )
        self.pending_trigger = PendingTrigger(params.engine)
        self.risk_gate = RiskGate(params.risk, instrument, max_notional, max_leverage)
        self._last_block: tuple[str, str, int] | None = None
        self._state_block: str | None = None
        self.warmup_errors = 0

    # -- Strategy protocol -------------------------------------------------

    def warmup(self, candle: Candle) -> None:
        """Advance the indicators only (no decision, no intent, no event)."""
        self._bar += 1
        errors = self._observe(candle)
        if errors:
            self.warmup_errors += len(errors)

    def on_funding(self, funding: FundingRate) -> None:
        self.derivatives_flows.observe(funding.rate)

    def on_candle(self, candle: Candle, account: AccountView) -> StrategyOutput:
        self._bar += 1
        bar = self._bar
        ts = candle.ts
        if account.funding_rate is not None:
            self.derivatives_flows.latest = account.funding_rate
        events: list[Event] = self._observe(candle)  # agent_error events, if any
        failed = bool(events)
        intents: list[Intent] = []

        if self._state_block is not None and not self._state_persists(self._state_block, account):
            self._state_block = None
        working = account.working_orders
        cancelled = False
        if self.pending_trigger.client_id is not None:
            try:
                cancel = self.pending_trigger.check(bar, working, self.derivatives_flows.gate == GATE_HALT)
            except Exception as exc:
                events.append(agent_error(ts, PendingTrigger.name, exc))
                failed = True
                cancel = None
            if cancel is not None:
                cid, reason = cancel
                intents.append(CancelIntent(cid, reason))
                events.append(decision_event(ts, {"action": "cancel", "reason": reason, "client_id": cid}))
                cancelled = True

        if failed or cancelled or account.position_qty != 0.0 or working:
            self._last_block = None
            return StrategyOutput(intents, events)
        self._decide(candle, account, bar, events, intents)
        return StrategyOutput(intents, events)

    def on_broker_event(self, event: Event) -> list[Event]:
        """Journal lines for our plans; a broker rejection of our entry starts
        the cooldown (so a refused order is not re-sent every candle)."""
        try:
            if isinstance(event, OrderEvent) and event.status in ("rejected", "duplicate"):
                cid = event.client_id
                if cid.startswith(self.id_prefix + "-"):
                    self.pending_trigger.forget(cid)
                    if event.status == "rejected":
                        self.execution_risk_sentinel.start_cooldown(self._bar)
            return self.journal_coach.on_event(event, self._bar)
        except Exception as exc:
            return [agent_error(event.ts, JournalCoach.name, exc)]

    # -- phases -------------------------------------------------------------

    def _observe(self, c: Candle) -> list[Event]:
        """Advance every agent's indicators; return agent_error events."""
        errors: list[Event] = []
        h, lo, cl, v = c.high, c.low, c.close, c.volume
        try:
            self.market_intake.update(h, lo, cl)
        except Exception as exc:
            errors.append(agent_error(c.ts, MarketIntake.name, exc))
        try:
            self.derivatives_flows.update()
        except Exception as exc:
            errors.append(agent_error(c.ts, DerivativesFlows.name, exc))
        try:
            self.cvd_divergence.update(h, lo, cl, v)
        except Exception as exc:
            errors.append(agent_error(c.ts, CvdDivergence.name, exc))
        try:
            self.setup_signal.update(h, lo, cl, v)
        except Exception as exc:
            errors.append(agent_error(c.ts, SetupSignal.name, exc))
        return errors

    def _decide(
        self, c: Candle, account: AccountView, bar: int, events: list[Event], intents: list[Intent]
    ) -> None:
        ts = c.ts
        sig = self.setup_signal
        try:
            setup = sig.find(c.high, c.low, c.close, c.volume, self.market_intake, self.cvd_divergence.signal)
        except Exception as exc:
            events.append(agent_error(ts, SetupSignal.name, exc))
            return
        if setup is None:
            blocked = sig.blocked_setup
            if blocked is not None:
                self._block(ts, sig.blocked, blocked, events)
            else:
                self._last_block = None
            return

        flows = self.derivatives_flows
        sentinel = self.execution_risk_sentinel
        try:
            qty, reason, mult = sentinel.assess(setup, flows.gate, account.equity, bar)
        except Exception as exc:
            events.append(agent_error(ts, ExecutionRiskSentinel.name, exc))
            return
        if reason:
            if reason in COOLDOWN_REASONS:
                sentinel.start_cooldown(bar)
            self._block(ts, reason, setup, events)
            return

        try:
            reason, rr = self.risk_gate.check(setup, qty, account.equity, account.entries_blocked, flows.gate)
        except Exception as exc:
            events.append(agent_error(ts, RiskGate.name, exc))
            return
        if reason:
            if reason in COOLDOWN_REASONS:
                sentinel.start_cooldown(bar)
            self._block(ts, reason, setup, events, rr=rr, qty=qty)
            return

        cid = f"{self.id_prefix}-{ts}-0"
        side = Side.BUY if setup.side > 0 else Side.SELL
        limit = setup.order_type == LIMIT
        intents.append(OrderIntent(
            client_id=cid,
            side=side,
            type=OrderType.LIMIT if limit else OrderType.MARKET,
            qty=qty,
            price=setup.entry if limit else None,
            stop=setup.stop,
            target=setup.target,
            trailing=setup.trailing,
            reason=setup.name,
        ))
        if limit:
            self.pending_trigger.track(cid, bar)
        self._last_block = None
        data = self._context(setup)
        data["action"] = "enter"
        data["reason"] = setup.name
        data["qty"] = qty
        data["rr"] = round(rr, 4)
        data["size_mult"] = mult
        data["client_id"] = cid
        events.append(decision_event(ts, data))
        try:
            events.append(self.journal_coach.plan_created(
                    ts, cid, setup.name, setup.side, setup.order_type, setup.entry, setup.stop, setup.target, qty, bar
                ))
        except Exception as exc:
            events.append(agent_error(ts, JournalCoach.name, exc))

    # -- helpers ------------------------------------------------------------

    def _state_persists(self, reason: str, account: AccountView) -> bool:
        if reason == "entries_blocked":
            return account.entries_blocked
        gate = self.derivatives_flows.gate
        return gate == GATE_HALT if reason == "funding_halt" else gate == GATE_NO_TRADE

    def _context(self, setup: Setup) -> dict[str, Any]:
        mi = self.market_intake
        flows = self.derivatives_flows
        d = setup.as_dict()
        d["trend"] = TREND_NAMES[mi.trend]
        d["regime"] = mi.regime
        d["atr"] = mi.atr.value
        d["funding_gate"] = flows.gate
        d["funding_rate"] = flows.rate
        d["cvd_divergence"] = DIVERGENCE_NAMES[self.cvd_divergence.signal]
        return d

    def _block(
        self,
        ts: int,
        reason: str,
        setup: Setup,
        events: list[Event],
        *,
        rr: float | None = None,
        qty: float | None = None,
    ) -> None:
        if reason in STATE_BLOCKS:
            if self._state_block == reason:
                return
            self._state_block = reason
        key = (reason, setup.name, setup.side)
        last = self._last_block
        if last is not None:
            if key == last:
                return
            # A persisting setup that a cooldown holds back after its own no-go
            # was already reported: stay quiet (and keep the original key, so
            # the no-go repeating after the cooldown stays quiet as well).
            if reason == "cooldown" and last[1:] == key[1:]:
                return
        self._last_block = key
        data = self._context(setup)
        data["action"] = "block"
        data["reason"] = reason
        if rr is not None and rr > 0.0:
            data["rr"] = round(rr, 4)
        if qty:
            data["qty"] = qty
        events.append(decision_event(ts, data))

    # -- state ---------------------------------------------------------------

    state_tag = _STATE_TAG

    def _dump_state(self) -> tuple[Any, ...]:
        """Everything that changes while running, as nested tuples of plain
        values with the indicator windows packed as raw doubles (behind the
        tag, see :meth:`StrategyCore.snapshot_state`).

        The Engine stores this every candle. Pickling the whole object cost
        70-120 us and ~4 KB a candle; this is a few microseconds and about
        half the bytes. :meth:`restore_state` refuses a state whose windows
        do not fit the configured periods (``ValueError``)."""
        return (
            self._bar, self._last_block, self._state_block, self.warmup_errors,
            self.market_intake.dump(), self.derivatives_flows.dump(), self.cvd_divergence.dump(),
            self.setup_signal.dump(), self.execution_risk_sentinel.cooldown_until, self.pending_trigger.dump(),
            self.journal_coach.dump(),
        )  # fmt: skip

    def _load_state(self, values: Sequence[Any]) -> None:
        if len(values) != 11:
            raise ValueError(
                f"the stored {_STATE_TAG} state has {len(values)} values, not 11: "
                "the stored strategy was built from a differently shaped configuration"
            )
        (bar, last_block, state_block, warmup_errors, mi, flows, cvd, sig, cooldown, pending, journal) = values
        self.market_intake.load(mi)
        self.derivatives_flows.load(flows)
        self.cvd_divergence.load(cvd)
        self.setup_signal.load(sig)
        self.execution_risk_sentinel.cooldown_until = cooldown
        self.pending_trigger.load(pending)
        self.journal_coach.load(journal)
        self._bar = bar
        self._last_block = None if last_block is None else tuple(last_block)
        self._state_block = state_block
        self.warmup_errors = warmup_errors

    def status(self) -> dict[str, Any]:
        """A JSON-able view of the agents' state (for /health and reports)."""
        mi = self.market_intake
        return {
            "strategy": self.name,
            "bar": self._bar,
            "trend": TREND_NAMES[mi.trend],
            "regime": mi.regime,
            "ready": mi.ready,
            "funding_gate": self.derivatives_flows.gate,
            "cooldown_until_bar": self.execution_risk_sentinel.cooldown_until,
            "pending_entry": self.pending_trigger.client_id,
        }
