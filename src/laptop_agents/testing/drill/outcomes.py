"""What the bot did about each fault, from what it wrote while the fault
played out (the window from one fault to the next): its exits and the
watchdog's decisions, market-data errors by kind, reconnects, REST retries
and backfills, candles warmed because they came late, restarts -- and the
time until it had caught up with the market again.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from laptop_agents.exit_codes import ExitCode
from laptop_agents.testing.drill.actions import FaultRecord
from laptop_agents.testing.drill.evidence import ROUTE_COMPONENT, LogLine


def _exit_name(code: int) -> str:
    if code < 0:
        return {9: "SIGKILL", 15: "SIGTERM"}.get(-code, f"signal {-code}")
    try:
        return ExitCode(code).name.lower()
    except ValueError:
        return "unknown"


def observe(records: list[FaultRecord], logs: list[LogLine], end_wall: float) -> None:
    """Fill ``observed`` and ``outcome`` of each injected record."""
    injected = [r for r in records if r.injected and r.at_wall is not None]
    for i, rec in enumerate(injected):
        lo = rec.at_wall or 0.0
        hi = injected[i + 1].at_wall if i + 1 < len(injected) else end_wall
        window = [ln for ln in logs if lo <= ln.wall < (hi or end_wall)]
        rec.observed = _observed(window)
        rec.outcome = _outcome(rec)
    for rec in records:
        if not rec.injected:
            rec.outcome = f"not injected: {rec.why_not}"


def _observed(window: list[LogLine]) -> dict[str, Any]:
    exits: list[dict[str, Any]] = []
    errors: Counter[str] = Counter()
    late = warmup = backfilled = rest_retries = reconnects = unknown = lookups_failed = private_problems = 0
    watchdog_end: int | None = None
    for ln in window:
        msg, f = ln.message, ln.fields
        if ln.component == ROUTE_COMPONENT:
            n = int(f.get("n") or 0)
            if f.get("route") == "late":
                late += n
            elif f.get("route") == "warmup":
                warmup += n
        elif msg == "session exited" and "exit_code" in f:
            exits.append({"exit_code": f.get("exit_code"), "hung": bool(f.get("hung")), "uptime_s": f.get("uptime_s")})
        elif msg == "watchdog end":
            watchdog_end = f.get("exit_code")
        elif msg.startswith("market data error"):
            errors[str(f.get("kind"))] += 1
        elif msg.startswith("REST backfill"):
            backfilled += int(f.get("new") or 0)
        elif msg.startswith("bitunix REST retry"):
            rest_retries += 1
        elif msg.startswith("bitunix websocket reconnected"):
            reconnects += 1
        elif msg.startswith("bitunix place") and "outcome unknown" in msg:
            unknown += 1
        elif msg.startswith("resolving client id"):
            lookups_failed += 1
        elif msg.startswith("private stream:"):
            private_problems += 1
    return {"exits": exits, "watchdog_end": watchdog_end, "md_errors": dict(errors), "late_warmed": late,
            "restart_warmup": warmup, "backfilled": backfilled, "rest_retries": rest_retries,
            "reconnects": reconnects, "placements_unknown": unknown, "lookups_failed": lookups_failed,
            "private_stream_problems": private_problems}


def _outcome(rec: FaultRecord) -> str:
    o = rec.observed
    parts: list[str] = []
    exits = o.get("exits") or []
    for e in exits:
        code = int(e["exit_code"])
        if e.get("hung"):
            parts.append("hung: the watchdog killed it")
        elif code < 0:
            parts.append(f"killed ({_exit_name(code)})")
        else:
            parts.append(f"session stopped with exit {code} ({_exit_name(code)})")
    if o.get("watchdog_end") is not None:
        parts.append(f"the watchdog stopped with exit {o['watchdog_end']} (not restartable, by design)")
    if rec.notes.get("watchdog_restarted_by_drill"):
        parts.append("the drill freed the disk and started the watchdog again")
    restarts = sum(1 for e in exits) - (1 if o.get("watchdog_end") is not None else 0)
    if restarts > 0:
        parts.append(f"restarted {restarts}x by the watchdog")
    if o.get("md_errors"):
        parts.append("market-data errors " + ", ".join(f"{k} x{v}" for k, v in sorted(o["md_errors"].items())))
    if o.get("reconnects"):
        parts.append(f"{o['reconnects']} reconnect(s)")
    if rec.notes.get("hit_after_s") is not None:
        what = "fill" if rec.kind == "delayed_fills" else "placement"
        parts.append(f"the exchange's fault hit the next {what} {rec.notes['hit_after_s']:.1f} s after it was armed")
    if rec.notes.get("order_in_flight"):
        parts.append(f"killed with order {rec.notes['order_in_flight']} accepted by the exchange, its reply held")
    if o.get("placements_unknown"):
        parts.append(f"{o['placements_unknown']} placement(s) with an unknown outcome, settled by client id "
                     f"(never sent again)")
    if o.get("lookups_failed"):
        parts.append(f"{o['lookups_failed']} client-id lookup(s) failed and were retried")
    if o.get("private_stream_problems"):
        parts.append(f"{o['private_stream_problems']} private-stream problem(s)")
    if o.get("rest_retries"):
        parts.append(f"{o['rest_retries']} REST retries")
    if o.get("backfilled"):
        parts.append(f"{o['backfilled']} candles backfilled over REST")
    if o.get("late_warmed"):
        parts.append(f"{o['late_warmed']} late candles warmed, not traded")
    if o.get("restart_warmup") and exits:
        parts.append(f"{o['restart_warmup']} candles warmed at restart")
    if rec.notes.get("report_exit") is not None:
        parts.append(f"`laptop-agents report` on the run it cut short: exit {rec.notes['report_exit']}"
                     + (f" ({rec.notes['report_error']})" if rec.notes.get("report_error") else ""))
    if not parts:
        parts.append("no visible disruption")
    if rec.recovered:
        parts.insert(0, f"recovered in {rec.recover_s:.1f} s")
    elif rec.recovered is False:
        parts.insert(0, "NOT recovered")
    return "; ".join(parts)
