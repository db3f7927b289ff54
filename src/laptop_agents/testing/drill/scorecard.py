"""The scorecard: ``scorecard.json`` (everything), ``scorecard.html`` (the
same, for a human, with the resource curves) and a console summary."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from laptop_agents.fileio import write_text_atomic
from laptop_agents.testing.drill.drill import DrillOutcome
from laptop_agents.testing.drill.invariants import _longest_segment
from laptop_agents.testing.drill.runs import Sample

MAX_POINTS = 400


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _series(samples: Sequence[Sample], attr: str, t0: float) -> list[list[float]]:
    pts = [[round(s.wall - t0, 2), getattr(s, attr)] for s in samples if getattr(s, attr) is not None]
    if len(pts) > MAX_POINTS:
        stride = len(pts) / MAX_POINTS
        pts = [pts[int(i * stride)] for i in range(MAX_POINTS)] + [pts[-1]]
    return pts


def build(outcome: DrillOutcome, *, command: str, exit_code: int) -> dict[str, Any]:
    plan = outcome.plan
    runs: dict[str, Any] = {}
    for name, ev in outcome.runs.items():
        rt = ev.routing
        seg = _longest_segment(ev.samples)
        t0 = ev.samples[0].wall if ev.samples else outcome.started_wall
        runs[name] = {
            "sessions": len(rt.segments),
            "candles": {"traded": rt.count("trade"), "warmed_at_start": rt.count("warmup"),
                        "warmed_late": rt.count("late"), "blind": len(rt.blind), "lost": len(rt.lost),
                        "twice": len(rt.duplicates)},
            "fills": len(ev.store.fills), "trades": len(ev.store.trades),
            "net_pnl": round(sum(t["net_pnl"] for t in ev.store.trades), 2),
            "final_position": ev.position_qty,
            "last_candle": _iso(ev.store.last_candle_ts),
            "resources": {
                "longest_process_s": round(seg[-1].wall - seg[0].wall, 1) if seg else 0.0,
                "rss_mb_max": max((s.rss_mb for s in ev.samples if s.rss_mb is not None), default=None),
                "fds_max": max((s.fds for s in ev.samples if s.fds is not None), default=None),
                "tasks_max": max((s.tasks for s in ev.samples if s.tasks is not None), default=None),
                "wal_bytes_max": max((s.wal_bytes for s in ev.samples if s.wal_bytes is not None), default=None),
                "journal_bytes_last": next((s.journal_bytes for s in reversed(ev.samples)
                                            if s.journal_bytes is not None), None),
                "log_bytes_last": next((s.log_bytes for s in reversed(ev.samples) if s.log_bytes is not None), None),
            },
            "series": {attr: _series(ev.samples, attr, t0)
                       for attr in ("rss_mb", "fds", "tasks", "wal_bytes", "journal_bytes", "log_bytes")},
        }
    injected = [r for r in outcome.records if r.injected]
    return {
        "drill": outcome.root.name,
        "verdict": "PASS" if outcome.ok else "FAIL",
        "exit_code": exit_code,
        "command": command,
        "mode": plan.mode,
        "execution": "live on the fake exchange's private side (--live-fake)" if plan.live else "paper",
        "plan": {"days": plan.days, "speed": plan.speed, "seed": plan.seed, "candles": plan.candles,
                 "market": [_iso(outcome.window[0]), _iso(outcome.window[1])], "kinds": list(plan.kinds),
                 "interval": "1m", "live": plan.live,
                 "strategy": "sma_cross 20/120, 1 % stop attached, target 3R, " + (
                     "risking 2 % of the fake account's 10,000 USDT" if plan.live
                     else "size capped by the maximum notional")},
        "wall_s": round(outcome.ended_wall - outcome.started_wall, 1),
        "machine": outcome.machine,
        "fault_kinds": sorted({r.kind for r in injected}),
        "faults_injected": len(injected),
        "faults": [r.to_dict() | {"at_market": _iso(r.at_market_ms)} for r in outcome.records],
        "invariants": [c.to_dict() for c in outcome.checks],
        "failed": [c.name for c in outcome.checks if not c.ok],
        "runs": runs,
        "definitions": {c.name: c.definition for c in outcome.checks},
        "not_applicable": dict(outcome.not_applicable),
    }


def write(card: dict[str, Any], root: Path) -> tuple[Path, Path]:
    js = root / "scorecard.json"
    page = root / "scorecard.html"
    write_text_atomic(js, json.dumps(card, indent=1, default=str) + "\n")
    write_text_atomic(page, render_html(card))
    return js, page


def console(card: dict[str, Any], echo: Callable[[str], None]) -> None:
    echo("")
    echo(f"== drill {card['drill']} ({card['mode']}): {card['plan']['days']:g} day(s) of market at "
         f"{card['plan']['speed']:g}x in {card['wall_s']:.0f} s wall; {card['faults_injected']} faults of "
         f"{len(card['fault_kinds'])} kinds")
    for f in card["faults"]:
        mark = "  " if f["injected"] else "--"
        echo(f"{mark} #{f['seq']:<2} {f['kind']:<21} {f['outcome']}")
    echo("")
    for c in card["invariants"]:
        echo(f"{'PASS' if c['ok'] else 'FAIL'}  {c['name']:<26} {c['detail']}")
    for name, why in card.get("not_applicable", {}).items():
        echo(f"n/a   {name:<26} {why}")
    load = card["machine"].get("load_avg_1m")
    if load:
        echo(f"machine: {card['machine']['cpus']} cores, load average {load['min']}-{load['max']} "
             f"(mean {load['mean']}) while the drill ran")
    echo(f"verdict: {card['verdict']}" + (f" (failed: {', '.join(card['failed'])})" if card["failed"] else ""))


# --------------------------------------------------------------------- HTML
_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.ok{color:#0a7d28;font-weight:600}.bad{color:#c0121b;font-weight:600}
.muted{color:#777}code{background:#f4f4f4;padding:0 3px}svg{background:#fafafa;border:1px solid #eee}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{flex:1 1 320px}"""


def _e(v: Any) -> str:
    return html.escape(str(v))


def _chart(title: str, pts: list[list[float]], unit: str, scale: float = 1.0) -> str:
    if len(pts) < 2:
        return f"<div class='chart'><b>{_e(title)}</b><p class='muted'>no samples</p></div>"
    w, h, pad = 340, 140, 30
    xs = [p[0] for p in pts]
    ys = [p[1] / scale for p in pts]
    x0, x1 = min(xs), max(xs) or 1
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 1, y1 + 1

    def px(x: float) -> float:
        return pad + (x - x0) / (x1 - x0 or 1) * (w - pad - 5)

    def py(y: float) -> float:
        return h - 18 - (y - y0) / (y1 - y0) * (h - 30)

    path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=True))
    return (f"<div class='chart'><b>{_e(title)}</b><br><svg width='{w}' height='{h}'>"
            f"<polyline fill='none' stroke='#2463b8' stroke-width='1.5' points='{path}'/>"
            f"<text x='2' y='14' font-size='10'>{y1:.4g} {unit}</text>"
            f"<text x='2' y='{h - 20}' font-size='10'>{y0:.4g}</text>"
            f"<text x='{w - 60}' y='{h - 4}' font-size='10'>{x1:.0f} s</text></svg></div>")


def render_html(card: dict[str, Any]) -> str:
    ok = card["verdict"] == "PASS"
    rows = []
    for f in card["faults"]:
        status = ("<span class='ok'>recovered</span>" if f.get("recovered") else
                  "<span class='bad'>not recovered</span>" if f["injected"] else "<span class='muted'>not injected</span>")
        rec = f"{f['recover_s']:.1f} s" if f.get("recover_s") is not None else ""
        rows.append(f"<tr><td>{f['seq']}</td><td><b>{_e(f['kind'])}</b><br><span class='muted'>{_e(f['title'])}"
                    f"</span></td><td>{_e(f.get('at_market') or '')}</td><td>{status}</td><td>{rec}</td>"
                    f"<td>{_e(f['outcome'])}</td></tr>")
    inv_rows = []
    for c in card["invariants"]:
        cls = "ok" if c["ok"] else "bad"
        inv_rows.append(f"<tr><td class='{cls}'>{'PASS' if c['ok'] else 'FAIL'}</td><td><b>{_e(c['name'])}</b><br>"
                        f"<span class='muted'>{_e(c['definition'])}</span></td><td>{_e(c['detail'])}</td>"
                        f"<td><code>{_e(json.dumps(c.get('measured') or {}, default=str))[:600]}</code></td></tr>")
    for name, why in card.get("not_applicable", {}).items():
        inv_rows.append(f"<tr><td class='muted'>n/a</td><td><b>{_e(name)}</b></td><td>{_e(why)}</td><td></td></tr>")
    run_parts = []
    for name, r in card["runs"].items():
        s = r["series"]
        run_parts.append(
            f"<h2>{_e(name)} run</h2><p>{r['sessions']} session process(es); candles: "
            f"{_e(json.dumps(r['candles']))}; {r['fills']} fills, {r['trades']} closed trades, net PnL "
            f"{r['net_pnl']}, final position {r['final_position']}; last candle {_e(r['last_candle'])}.</p>"
            f"<div class='charts'>{_chart('RSS of the session', s['rss_mb'], 'MB')}"
            f"{_chart('open file descriptors', s['fds'], '')}{_chart('asyncio tasks', s['tasks'], '')}"
            f"{_chart('state.db-wal', s['wal_bytes'], 'MB', 1_048_576)}"
            f"{_chart('events.jsonl of the current run', s['journal_bytes'], 'KB', 1024)}"
            f"{_chart('logs/system.jsonl*', s['log_bytes'], 'MB', 1_048_576)}</div>")
    load = card["machine"].get("load_avg_1m")
    machine = f"{card['machine'].get('cpus')} cores" + (
        f", load average {load['min']}-{load['max']} (mean {load['mean']}) while it ran" if load else "")
    plan = card["plan"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>drill {_e(card['drill'])}</title>
<style>{_CSS}</style></head><body>
<h1>Drill {_e(card['drill'])}: <span class="{'ok' if ok else 'bad'}">{card['verdict']}</span></h1>
<p><code>{_e(card['command'])}</code> &mdash; {_e(card['mode'])}, {_e(card.get('execution', 'paper'))}: {plan['days']:g} day(s) of 1-minute candles
({plan['candles']} candles, market {_e(plan['market'][0])} to {_e(plan['market'][1])}) at {plan['speed']:g}x,
seed {plan['seed']}, in {card['wall_s']:.0f} s of wall time on {_e(machine)}. Strategy: {_e(plan['strategy'])}.
Exit code {card['exit_code']}.</p>
<h2>Faults ({card['faults_injected']} injected, {len(card['fault_kinds'])} kinds)</h2>
<table><tr><th>#</th><th>fault</th><th>market time</th><th>result</th><th>recovery</th><th>what the bot did</th></tr>
{''.join(rows)}</table>
<h2>Invariants</h2>
<table><tr><th></th><th>invariant and its definition</th><th>result</th><th>measured</th></tr>{''.join(inv_rows)}</table>
{''.join(run_parts)}
</body></html>
"""
