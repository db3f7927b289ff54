"""The invariants a drill checks at the end, each with its precise definition
(printed in the scorecard) and what it measured.

"Identical to the fault-free run", made precise. Faults change *when* the
bot sees candles: a reconnect, a gap, a restart or a frozen process delivers
candles late, and a candle that closed more than two intervals before the bot
got it is warmed (indicators, stops and targets) but never traded -- by
design, a late candle is never traded at a stale price. So the faulted run
may route some candles differently from the fault-free one; that is the
measured allowance, and the only one:

- ``candles_processed_once``: every candle of the window was processed
  exactly once (traded or warmed) in each run -- none lost, none twice;
- ``ledger_matches_replay``: each run's fills, closed trades and final
  position are exactly those of the product's Engine replaying the market
  with that run's routing -- so crashes, restarts and faults lost, doubled
  or invented nothing;
- ``matches_baseline``: the two runs processed the same candles; their fills
  are identical up to the first candle they routed differently (and all of
  them, and the final position, when no candle was routed differently);
  the differences after it are measured and listed, and by the replay
  invariant they come from that routing alone.

Live (``--live-fake``): a fill is the exchange's, made by its matching at the
price and time the order reached it, so neither the replay (it models the
paper broker) nor the baseline's fills are a reference any more; the
exchange's own record is (:mod:`.live_books`): ``exchange_orders_once``,
``exchange_fills_once``, ``position_matches_exchange`` and
``live_orders_resolved``. ``ledger_matches_replay`` is listed as not
applicable (``NOT_IN_LIVE``) and ``matches_baseline`` compares the candles
processed only.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from laptop_agents.domain.models import Candle
from laptop_agents.testing.drill.actions import FaultRecord
from laptop_agents.testing.drill.evidence import Routing, RunFiles, StoreView
from laptop_agents.testing.drill.live_books import BooksComparison
from laptop_agents.testing.drill.replay import FILL_KEYS, TRADE_KEYS, Replayed, key_of
from laptop_agents.testing.drill.runs import Sample

RSS_LIMIT_MB = 10.0
FD_SLACK = 3
TASK_SLACK = 3
WAL_LIMIT_BYTES = 32 << 20
MIN_FLAT_S = 45.0


@dataclass
class Check:
    name: str
    ok: bool
    definition: str
    detail: str
    measured: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunEvidence:
    """Everything read back from one finished run."""

    name: str
    store: StoreView
    routing: Routing
    files: RunFiles
    replay: Replayed | None
    samples: list[Sample]
    end_ts: int
    books: BooksComparison | None = None  # live: the exchange's record against the books

    @property
    def position_qty(self) -> float:
        qty = 0.0
        for f in self.store.fills:
            qty += f["qty"] if f["side"] == "BUY" else -f["qty"]
        return round(qty, 10)


def reached_end(runs: Sequence[RunEvidence]) -> Check:
    short = [f"{r.name} stopped at {r.store.last_candle_ts}" for r in runs if r.store.last_candle_ts != r.end_ts]
    return Check("reached_the_end", not short,
                 "every run processed the market up to its last candle",
                 "; ".join(short) or "every run processed the last candle",
                 {r.name: r.store.last_candle_ts for r in runs})


def store_integrity(runs: Sequence[RunEvidence]) -> Check:
    bad = []
    for r in runs:
        if not r.store.opened:
            bad.append(f"{r.name}: the store refused to open: {r.store.error}")
        if r.store.integrity != "ok":
            bad.append(f"{r.name}: PRAGMA integrity_check: {r.store.integrity}")
    return Check("store_integrity", not bad,
                 "each state store opens with its own checks and passes SQLite's full integrity check",
                 "; ".join(bad) or "ok", {r.name: r.store.integrity for r in runs})


def candles_once(runs: Sequence[RunEvidence], blind_ok: bool) -> Check:
    problems: list[str] = []
    measured: dict[str, Any] = {}
    for r in runs:
        rt = r.routing
        measured[r.name] = {"candles": len(rt.routes) + len(rt.blind), "traded": rt.count("trade"),
                            "warmed_at_start": rt.count("warmup"), "warmed_late": rt.count("late"),
                            "blind": len(rt.blind), "lines_never_committed": rt.voided,
                            "lost": len(rt.lost), "twice": len(rt.duplicates) + len(r.files.candles_twice)}
        if rt.duplicates:
            t, how = next(iter(rt.duplicates.items()))
            problems.append(f"{r.name}: {len(rt.duplicates)} candle(s) processed twice (first {t}: {'+'.join(how)})")
        if r.files.candles_twice:
            problems.append(f"{r.name}: {len(r.files.candles_twice)} candle(s) traded twice in candles.csv "
                            f"(first {r.files.candles_twice[0]})")
        if rt.lost:
            problems.append(f"{r.name}: {len(rt.lost)} candle(s) never processed (first {rt.lost[0]})")
        if rt.blind and not blind_ok:
            problems.append(f"{r.name}: {len(rt.blind)} candle(s) without a routing line outside a full disk")
        if rt.first_ts is None:
            problems.append(f"{r.name}: no candle was processed")
    return Check("candles_processed_once", not problems,
                 "every candle from a run's first to the market's last was processed exactly once, traded or "
                 "warmed (candles whose routing line was lost to the full disk count as blind, settled by the "
                 "ledger replay)", "; ".join(problems) or "ok", measured)


def candles_true(runs: Sequence[RunEvidence], candle_at: Callable[[int], Candle], late_limit_ms: int) -> Check:
    problems: list[str] = []
    measured: dict[str, Any] = {}
    for r in runs:
        wrong = 0
        first: int | None = None
        for t, values in r.files.candles_seen.items():
            c = candle_at(t)
            if values != (c.open, c.high, c.low, c.close, c.volume):
                wrong += 1
                first = t if first is None else min(first, t)
        measured[r.name] = {"traded_candles_checked": len(r.files.candles_seen), "wrong": wrong,
                            "traded_late": len(r.routing.late_traded)}
        if wrong:
            problems.append(f"{r.name}: {wrong} traded candle(s) differ from the market (first {first})")
        if r.routing.late_traded:
            t, late = r.routing.late_traded[0]
            problems.append(f"{r.name}: {len(r.routing.late_traded)} candle(s) traded although "
                            f"{late / 1000:.0f} s late (first {t})")
    return Check("candles_true_and_fresh", not problems,
                 f"every traded candle is the market's candle value for value (garbage, torn, duplicate and "
                 f"out-of-order frames never became one) and none was traded more than {late_limit_ms // 1000} s "
                 f"after its close", "; ".join(problems) or "ok", measured)


def fills_not_doubled(runs: Sequence[RunEvidence]) -> Check:
    problems: list[str] = []
    measured: dict[str, Any] = {}
    for r in runs:
        keys = Counter((f["client_id"], f["ts"]) for f in r.store.fills)
        doubled = [k for k, n in keys.items() if n > 1]
        jkeys = Counter((f.get("client_id"), f.get("ts")) for f in r.files.journal_fills)
        jdoubled = [k for k, n in jkeys.items() if n > 1]
        measured[r.name] = {"fills": len(r.store.fills), "doubled_in_store": len(doubled),
                            "doubled_in_journal": len(jdoubled)}
        if doubled:
            problems.append(f"{r.name}: {len(doubled)} fill(s) recorded twice in the store (first {doubled[0]})")
        if jdoubled:
            problems.append(f"{r.name}: {len(jdoubled)} fill(s) journaled twice (first {jdoubled[0]})")
    return Check("no_duplicated_fills", not problems,
                 "no order was filled twice for one candle: no two fills of one client id at one time, in the "
                 "store or across the journals", "; ".join(problems) or "ok", measured)


def fills_not_lost(runs: Sequence[RunEvidence]) -> Check:
    problems: list[str] = []
    measured: dict[str, Any] = {}
    for r in runs:
        store = {(f["client_id"], f["ts"], f["qty"], f["price"]) for f in r.store.fills}
        journal = {(f.get("client_id"), f.get("ts"), f.get("qty"), f.get("price")) for f in r.files.journal_fills}
        missing = sorted(journal - store, key=lambda k: k[1] or 0)
        unjournaled = len(store - journal)
        measured[r.name] = {"journal_fills": len(journal), "store_fills": len(store),
                            "journal_not_in_store": len(missing),
                            "store_not_in_journal": unjournaled, "torn_journal_tails": r.files.torn_tails,
                            "unreadable_journals": len(r.files.journal_errors)}
        if missing:
            problems.append(f"{r.name}: {len(missing)} journaled fill(s) missing from the state store "
                            f"(first {missing[0]})")
        if r.files.journal_errors:
            problems.append(f"{r.name}: {r.files.journal_errors[0]}")
    return Check("no_lost_fills", not problems,
                 "every fill in a journal is in the state store (the store is committed first, so a journal "
                 "may lack the lines of the last step before a kill -9, never the reverse) and every journal "
                 "is readable but for a torn last line", "; ".join(problems) or "ok", measured)


def ledger_matches_replay(runs: Sequence[RunEvidence]) -> Check:
    problems: list[str] = []
    measured: dict[str, Any] = {}
    for r in runs:
        rp = r.replay
        if rp is None:
            problems.append(f"{r.name}: not replayed (no candle processed)")
            continue
        got = [key_of(f, FILL_KEYS) for f in r.store.fills]
        want = [key_of(f, FILL_KEYS) for f in rp.fills]
        tgot = [key_of(t, TRADE_KEYS) for t in r.store.trades]
        twant = [key_of(t, TRADE_KEYS) for t in rp.trades]
        measured[r.name] = {"fills": len(got), "replay_fills": len(want), "trades": len(tgot),
                            "replay_trades": len(twant), "position": r.position_qty,
                            "replay_position": rp.position_qty, "replay_equity": round(rp.equity, 6),
                            "blind_settled": rp.blind_resolved, "settled": rp.settled}
        if got != want:
            i = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
            problems.append(f"{r.name}: fills differ from the replay at #{i + 1} "
                            f"(store {got[i] if i < len(got) else 'none'}, replay {want[i] if i < len(want) else 'none'})")
        if tgot != twant:
            problems.append(f"{r.name}: closed trades differ from the replay ({len(tgot)} vs {len(twant)})")
        if abs(r.position_qty - rp.position_qty) > 1e-9:
            problems.append(f"{r.name}: position {r.position_qty} from the ledger, {rp.position_qty} by the replay")
        summary_pos = _last_summary_position(r)
        if summary_pos is not None and abs(summary_pos - rp.position_qty) > 1e-9:
            problems.append(f"{r.name}: final summary says position {summary_pos}, the replay {rp.position_qty}")
        if not rp.settled:
            problems.append(f"{r.name}: blind candles could not be settled by the ledger")
    return Check("ledger_matches_replay", not problems,
                 "each run's fills, closed trades and final position equal, exactly, those of the product's "
                 "Engine replaying the same market with that run's routing (0 lost, doubled or invented orders "
                 "and fills)", "; ".join(problems) or "ok", measured)


def _last_summary_position(r: RunEvidence) -> float | None:
    if not r.files.run_ids:
        return None
    last = r.files.summaries.get(r.files.run_ids[-1])
    if not last:
        return None
    pos = last.get("position")
    if isinstance(pos, dict) and isinstance(pos.get("qty"), int | float):
        return float(pos["qty"])
    return None


def matches_baseline(faulted: RunEvidence, base: RunEvidence, *, live: bool = False) -> Check:
    fr, br = faulted.routing, base.routing
    definition = _BASELINE_LIVE_DEF if live else _BASELINE_DEF
    if fr.first_ts is None or br.first_ts is None:
        return Check("matches_baseline", False, definition, "a run processed no candle")
    lo = max(fr.first_ts, br.first_ts)
    hi = min(fr.last_ts or 0, br.last_ts or 0)
    step = 60_000
    common = range(lo, hi + step, step)
    only_f = [t for t in common if (t in fr.routes or t in fr.blind) != (t in br.routes or t in br.blind)]
    differ = [t for t in common if t in fr.routes and t in br.routes
              and (fr.routes[t] == "trade") != (br.routes[t] == "trade")]
    blind = [t for t in common if t in fr.blind or t in br.blind]
    first_diff = min(differ + blind) if differ or blind else None
    cut = first_diff if first_diff is not None else hi + step
    fk = [key_of(f, FILL_KEYS) for f in faulted.store.fills if lo <= f["ts"] < cut]
    bk = [key_of(f, FILL_KEYS) for f in base.store.fills if lo <= f["ts"] < cut]
    f_trades = {key_of(t, TRADE_KEYS) for t in faulted.store.trades if t["entry_ts"] >= lo}
    b_trades = {key_of(t, TRADE_KEYS) for t in base.store.trades if t["entry_ts"] >= lo}
    same = len(f_trades & b_trades)
    f_net = sum(t["net_pnl"] for t in faulted.store.trades if t["entry_ts"] >= lo)
    b_net = sum(t["net_pnl"] for t in base.store.trades if t["entry_ts"] >= lo)
    same_pos = _same_position_share(faulted.store.fills, base.store.fills, lo, hi, step)
    measured = {
        "window": [lo, hi], "candles": len(common), "position_identical_share": same_pos, "routed_differently": len(differ), "blind": len(blind),
        "first_difference": first_diff, "fills_compared_before_it": len(fk),
        "trades_faulted": len(f_trades), "trades_baseline": len(b_trades), "trades_identical": same,
        "net_pnl_faulted": round(f_net, 2), "net_pnl_baseline": round(b_net, 2),
        "position_faulted": faulted.position_qty, "position_baseline": base.position_qty,
        "late_warmed_faulted": fr.count("late"), "late_warmed_baseline": br.count("late"),
    }
    problems = []
    if only_f:
        problems.append(f"{len(only_f)} candle(s) processed by one run only (first {only_f[0]})")
    if live:
        detail = (f"the same {len(common)} candles processed; fills, trades and positions measured, not compared "
                  f"(live fills are the exchange's, at its price and time): {same} of {len(b_trades)} baseline "
                  f"trades identical, same position on {same_pos:.0%} of the candles")
        return Check("matches_baseline", not problems, definition, "; ".join(problems) or detail, measured)
    if fk != bk:
        i = next((i for i, (a, b) in enumerate(zip(fk, bk, strict=False)) if a != b), min(len(fk), len(bk)))
        problems.append(f"fills differ before any candle was routed differently, at #{i + 1}")
    if first_diff is None:
        if f_trades != b_trades:
            problems.append("closed trades differ although every candle was routed the same way")
        if abs(faulted.position_qty - base.position_qty) > 1e-9:
            problems.append("final positions differ although every candle was routed the same way")
    if first_diff is None:
        detail = f"identical: {same} trades, same final position, every candle routed the same way"
    else:
        detail = (f"identical up to the first candle routed differently ({first_diff}); {len(differ)} of "
                  f"{len(common)} candles routed differently (late in one run); {same} of {len(b_trades)} baseline "
                  f"trades identical, same position on {same_pos:.0%} of the candles")
    return Check("matches_baseline", not problems, _BASELINE_DEF, "; ".join(problems) or detail, measured)


def _same_position_share(f_fills: Sequence[dict[str, Any]], b_fills: Sequence[dict[str, Any]], lo: int, hi: int,
                         step: int) -> float:
    """Share of the candles in ``[lo, hi]`` after which both runs held the same position."""
    def deltas(fills: Sequence[dict[str, Any]]) -> dict[int, float]:
        out: dict[int, float] = {}
        for f in fills:
            t = f["ts"] - f["ts"] % step  # a live fill is at the exchange's time, inside its candle
            out[t] = out.get(t, 0.0) + (f["qty"] if f["side"] == "BUY" else -f["qty"])
        return out

    fd, bd = deltas(f_fills), deltas(b_fills)
    fp = sum(v for t, v in fd.items() if t < lo)
    bp = sum(v for t, v in bd.items() if t < lo)
    same = total = 0
    for t in range(lo, hi + step, step):
        fp += fd.get(t, 0.0)
        bp += bd.get(t, 0.0)
        total += 1
        same += abs(fp - bp) < 1e-9
    return round(same / total, 4) if total else 1.0


_BASELINE_DEF = ("the faulted and the fault-free run processed the same candles; their fills are identical up to "
                 "the first candle one of them warmed (it came late) and the other traded, and all fills, trades "
                 "and the final position are identical if there is none; later differences are listed and come "
                 "from that routing alone (see ledger_matches_replay)")


_BASELINE_LIVE_DEF = ("live: the faulted and the fault-free run processed the same candles. Their fills, trades "
                      "and positions are not required to be identical: a live fill is the exchange's, at the price "
                      "and time its matching gave the order when it arrived, and every fault moves that time; "
                      "that nothing was lost or doubled is checked against the exchange's own record instead "
                      "(exchange_orders_once, exchange_fills_once, position_matches_exchange)")

# Paper invariants that do not hold in live mode, and why (printed in the scorecard).
NOT_IN_LIVE: dict[str, str] = {
    "ledger_matches_replay": "the replay runs the paper broker's fill model; live fills come from the exchange's "
                             "matching, at its price and time, so they cannot be replayed from the candles -- "
                             "the exchange's own order log is the reference instead (exchange_fills_once)",
}


BooksMeasure = Callable[[RunEvidence, BooksComparison], tuple[Any, list[str]]]


def _per_run_books(name: str, statement: str, runs: Sequence[RunEvidence], measure: BooksMeasure) -> Check:
    """One live check over every run: ``measure`` gives what it measured and its
    problems for a run whose exchange record was read (a run without one fails)."""
    problems: list[str] = []
    measured: dict[str, Any] = {}
    for r in runs:
        b = r.books
        if b is None:
            problems.append(f"{r.name}: the exchange's record was not read")
            continue
        measured[r.name], found = measure(r, b)
        problems += [f"{r.name}: {p}" for p in found]
    return Check(name, not problems, statement, "; ".join(problems) or "ok", measured)


def exchange_orders_once(runs: Sequence[RunEvidence]) -> Check:
    return _per_run_books(
        "exchange_orders_once",
        "every order in the exchange's order log carries the client id of one live_orders row of the "
        "books, no client id was accepted twice and no intent became two exchange orders (0 doubled, "
        "0 unknown orders)", runs,
        lambda r, b: ({"exchange_orders": b.orders, "rows": len(b.rows), "doubled": len(b.doubled_orders),
                       "unknown": len(b.unknown_orders)}, b.order_problems()))


def exchange_fills_once(runs: Sequence[RunEvidence]) -> Check:
    return _per_run_books(
        "exchange_fills_once",
        "per exchange order, the quantity and the value booked in state.db equal what the exchange "
        "filled, and every booked fill belongs to a live order row (every fill counted once: 0 lost, "
        "doubled or invented)", runs,
        lambda r, b: ({"exchange_fills": b.fills, "booked_fills": len(r.store.fills),
                       "orders_booked_differently": len(b.fill_mismatches), "orphan_fills": len(b.orphan_fills)},
                      b.fill_problems()))


def position_matches_exchange(runs: Sequence[RunEvidence]) -> Check:
    def measure(r: RunEvidence, b: BooksComparison) -> tuple[Any, list[str]]:
        found = b.position_problems()
        summary_pos = _last_summary_position(r)
        if summary_pos is not None and abs(summary_pos - b.exchange_position) > 1e-9:
            found.append(f"final summary says position {summary_pos}, the exchange {b.exchange_position}")
        return {"exchange": b.exchange_position, "books": b.books_position}, found

    return _per_run_books(
        "position_matches_exchange",
        "at the end the exchange's position equals the books' (the net of their fills) and the last "
        "run summary's", runs, measure)


def live_orders_resolved(runs: Sequence[RunEvidence]) -> Check:
    return _per_run_books(
        "live_orders_resolved",
        "no live_orders row is left committed at the end: every order the bot decided to send is "
        "known to have reached the exchange or proven never placed", runs,
        lambda r, b: (dict(Counter(str(row.get("state")) for row in b.rows.values())), b.resolved_problems()))


def faults_survived(records: Sequence[FaultRecord]) -> Check:
    bad = [f"#{r.seq} {r.kind}" for r in records if r.injected and not r.recovered]
    skipped = [f"#{r.seq} {r.kind}: {r.why_not}" for r in records if not r.injected]
    kinds = sorted({r.kind for r in records if r.injected})
    return Check("faults_survived", not bad,
                 "after every injected fault the bot was back to processing the live market (caught up to "
                 "within three intervals), by itself or through the watchdog -- or, for a full disk, after the "
                 "operator's restart",
                 ("not recovered: " + ", ".join(bad)) if bad else f"{len(kinds)} kinds injected, all recovered",
                 {"injected": sum(1 for r in records if r.injected), "kinds": kinds, "not_injected": skipped})


# --------------------------------------------------------------------- resources
def _longest_segment(samples: Sequence[Sample]) -> list[Sample]:
    by_pid: dict[int, list[Sample]] = {}
    for s in samples:
        if s.pid is not None and s.rss_mb is not None:
            by_pid.setdefault(s.pid, []).append(s)
    if not by_pid:
        return []
    return max(by_pid.values(), key=lambda seg: seg[-1].wall - seg[0].wall)


def _windows(seg: list[Sample], attr: str) -> tuple[list[float], list[float]]:
    t0, t1 = seg[0].wall, seg[-1].wall
    span = t1 - t0
    early = [getattr(s, attr) for s in seg if t0 + 0.2 * span <= s.wall <= t0 + 0.35 * span]
    late = [getattr(s, attr) for s in seg if s.wall >= t1 - 0.15 * span]
    return [v for v in early if v is not None], [v for v in late if v is not None]


def resources(name: str, samples: Sequence[Sample], *, soak: bool) -> list[Check]:
    """Flat after warm-up, in the longest-lived session process: RSS growth
    below 10 MB, no growth of open fds or asyncio tasks, the WAL bounded."""
    seg = _longest_segment(samples)
    life = seg[-1].wall - seg[0].wall if seg else 0.0
    if life < MIN_FLAT_S:
        why = f"the longest-lived session process of the {name} run lived {life:.0f} s (< {MIN_FLAT_S:.0f} s)"
        return [Check("rss_flat", False, "RSS growth after warm-up below 10 MB", f"not measured: {why}")]
    out: list[Check] = []
    early, late = _windows(seg, "rss_mb")
    growth = statistics.median(late) - statistics.median(early) if early and late else None
    out.append(Check("rss_flat", growth is not None and growth < RSS_LIMIT_MB,
                     f"RSS of the longest-lived session process ({name} run) grows less than {RSS_LIMIT_MB:g} MB "
                     f"from after its warm-up (20-35 % of its life) to its end (last 15 %)",
                     f"{growth:+.1f} MB over {life:.0f} s" if growth is not None else "no samples",
                     {"pid": seg[0].pid, "life_s": round(life, 1), "early_mb": _med(early), "late_mb": _med(late),
                      "growth_mb": None if growth is None else round(growth, 2),
                      "max_mb": max(s.rss_mb or 0 for s in seg)}))
    if not soak:
        return out
    for attr, name_, slack, what in (("fds", "fds_flat", FD_SLACK, "open file descriptors"),
                                     ("tasks", "tasks_flat", TASK_SLACK, "asyncio tasks")):
        early, late = _windows(seg, attr)
        if not early or not late:
            out.append(Check(name_, False, f"no growth of {what}", "not measured: no samples"))
            continue
        g = max(late) - statistics.median(early)
        out.append(Check(name_, g <= slack, f"{what} at the end (max of the last 15 %) at most {slack} above "
                                            f"their level after warm-up (median of 20-35 %)",
                         f"{statistics.median(early):g} -> max {max(late):g}",
                         {"early": statistics.median(early), "late_max": max(late), "growth": g}))
    wal = [s.wal_bytes for s in samples if s.wal_bytes is not None]
    early_w, late_w = _windows(seg, "wal_bytes")
    wal_max = max(wal) if wal else 0
    ok = wal_max <= WAL_LIMIT_BYTES and (not early_w or not late_w or max(late_w) <= max(early_w) + (4 << 20))
    out.append(Check("wal_bounded", ok, f"the state store's write-ahead log never exceeds "
                                        f"{WAL_LIMIT_BYTES >> 20} MB and does not grow after warm-up",
                     f"max {wal_max / 1_048_576:.1f} MB", {"max_bytes": wal_max,
                                                           "early_max": max(early_w) if early_w else None,
                                                           "late_max": max(late_w) if late_w else None}))
    return out


def _med(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None
