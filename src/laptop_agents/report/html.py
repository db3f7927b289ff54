"""report.html: one page per run that opens offline.

Plotly's JavaScript (4.8 MB) is the bulk of a self-contained report, so where
it comes from is a choice (``system.report_plotly``):

- ``shared`` (default): written once per workspace to
  ``<workspace>/assets/plotly-<version>.min.js`` and referenced relatively
  (``../../assets/...``) from each ``runs/<run_id>/report.html``, so reports
  are ~100 KB and still open offline on the laptop that made them. A report
  copied out of its workspace falls back to the same pinned version from the
  plotly CDN, checked by its SRI hash (computed from the installed plotly's
  own file, which the CDN serves byte for byte).
- ``inline`` (``--offline-report``): embedded, one self-contained file that
  works anywhere without internet; also used for a run directory that is not
  in a workspace's ``runs/`` folder, where there is no shared place.
- ``cdn``: only the pinned CDN copy; the smallest, needs internet.

The chart data travel as one JSON block (``<script type="application/json"
id="report-data">``) that a few lines of script turn into plotly traces.
Tables (metrics, trades, decisions) are plain HTML so the page is readable,
searchable and testable without running any script. A year of one-minute
candles is far more than a browser can draw usefully, so candles are
aggregated into at most ``MAX_BARS`` OHLC bars and the equity/drawdown curves
into ``MAX_POINTS`` points; the page says so.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from laptop_agents.domain.isotime import ms_to_iso
from laptop_agents.logs import scrub
from laptop_agents.report.run_data import RunData

PLOTLY_MODES: tuple[str, ...] = ("shared", "inline", "cdn")
ASSETS_DIR = "assets"


class PlotlyBundle(NamedTuple):
    """The installed plotly.js: its bytes, version, pinned CDN URL and SRI hash."""

    data: bytes
    version: str
    cdn_url: str
    integrity: str

    @property
    def asset_name(self) -> str:
        return f"plotly-{self.version}.min.js"


@lru_cache(maxsize=1)
def plotly_bundle() -> PlotlyBundle:
    """Read once per process; the hash is of the exact bytes the CDN serves for this version."""
    # lazy: plotly takes ~0.14 s to import and only a report being written needs it
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    data = get_plotlyjs().encode("utf-8")
    version = get_plotlyjs_version()
    digest = base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")
    return PlotlyBundle(data, version, f"https://cdn.plot.ly/plotly-{version}.min.js", f"sha384-{digest}")


MAX_BARS = 3000
MAX_POINTS = 4000
MAX_TRADE_ROWS = 2000
MAX_TRADE_MARKS = 4000


def _bucket_starts(n: int, limit: int) -> tuple[np.ndarray, int]:
    size = max(1, math.ceil(n / limit))
    return np.arange(0, n, size), size


def downsample_candles(c: dict[str, np.ndarray], limit: int | None = None) -> tuple[dict[str, list[Any]], int]:
    """OHLC aggregation into at most ``limit`` bars (default MAX_BARS); returns the bars and the bucket size."""
    limit = MAX_BARS if limit is None else limit
    n = int(c["ts"].size)
    if n == 0:
        return {k: [] for k in ("ts", "open", "high", "low", "close")}, 1
    starts, size = _bucket_starts(n, limit)
    if size == 1:
        return {k: c[k].tolist() for k in ("ts", "open", "high", "low", "close")}, 1
    ends = np.append(starts[1:], n) - 1
    return {
        "ts": c["ts"][starts].tolist(),
        "open": c["open"][starts].tolist(),
        "high": np.maximum.reduceat(c["high"], starts).tolist(),
        "low": np.minimum.reduceat(c["low"], starts).tolist(),
        "close": c["close"][ends].tolist(),
    }, size


def downsample_curve(
    ts: np.ndarray, eq: np.ndarray, dd_pct: np.ndarray, limit: int | None = None
) -> dict[str, list[Any]]:
    """Equity at the end of each bucket and the deepest drawdown inside it (at most MAX_POINTS)."""
    limit = MAX_POINTS if limit is None else limit
    n = int(ts.size)
    if n == 0:
        return {"ts": [], "equity": [], "dd_pct": []}
    starts, size = _bucket_starts(n, limit)
    ends = np.append(starts[1:], n) - 1
    dd = np.maximum.reduceat(dd_pct, starts) if size > 1 else dd_pct
    return {"ts": ts[ends].tolist(), "equity": np.round(eq[ends], 6).tolist(), "dd_pct": np.round(-dd, 4).tolist()}


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or value == "":
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:,.{digits}f}"
    return str(value)


def _detail(v: Any) -> str:
    """Prices with cents, small fractions (funding rates, ratios) with their significant digits."""
    if isinstance(v, float) and math.isfinite(v):
        return f"{v:,.2f}" if abs(v) >= 100 else f"{v:.6g}"
    return str(v)


def _iso(ts: Any) -> str:
    try:
        return ms_to_iso(int(ts))
    except (TypeError, ValueError):
        return ""


_METRIC_ROWS = (
    ("net_pnl", "Net PnL", 2), ("return_pct", "Return %", 2), ("final_equity", "Final equity", 2),
    ("realized_pnl", "Realized PnL", 2), ("trades", "Trades", 0), ("win_rate_pct", "Win rate %", 1),
    ("profit_factor", "Profit factor", 2), ("expectancy", "Expectancy / trade", 2),
    ("max_drawdown", "Max drawdown", 2), ("max_drawdown_pct", "Max drawdown %", 2),
    ("sharpe", "Sharpe (ann.)", 2), ("sortino", "Sortino (ann.)", 2), ("exposure_pct", "Exposure %", 1),
    ("fees_paid", "Fees paid", 2), ("funding_paid", "Funding paid", 2), ("bars", "Bars", 0),
)


_MONEY = frozenset({"net_pnl", "final_equity", "realized_pnl", "expectancy", "max_drawdown", "fees_paid",
                    "funding_paid"})


def _metrics_html(metrics: dict[str, Any], currency: str | None = None) -> str:
    """Money in the account's currency: BTC (inverse contracts) needs more decimals than USDT."""
    cells = []
    for key, label, digits in _METRIC_ROWS:
        if key in _MONEY and currency == "BTC":
            digits = 6
        value = metrics.get(key)
        cls = ""
        if key in ("net_pnl", "return_pct", "realized_pnl") and isinstance(value, float):
            cls = " pos" if value > 0 else " neg" if value < 0 else ""
        cells.append(
            f'<div class="metric" data-key="{key}"><div class="label">{label}</div>'
            f'<div class="value{cls}">{html.escape(_fmt(value, digits))}</div></div>'
        )
    return '<div class="metrics">' + "".join(cells) + "</div>"


def _table(headers: list[str], rows: list[list[str]], table_id: str, *, text: bool = False) -> str:
    """A plain table; ``text`` left-aligns every column (tables of words rather than numbers)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    cls = ' class="text"' if text else ""
    return f'<table id="{table_id}"{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _trades_html(trades: list[dict[str, Any]]) -> str:
    rows = [
        [
            _fmt(t.get("n"), 0), str(t.get("side", "")), _fmt(t.get("qty"), 4),
            _iso(t.get("entry_ts")), _fmt(t.get("entry_price")), _iso(t.get("exit_ts")), _fmt(t.get("exit_price")),
            _fmt(t.get("stop")), _fmt(t.get("target")), _fmt(t.get("fees"), 4), _fmt(t.get("funding"), 4),
            _fmt(t.get("net_pnl")), str(t.get("exit_reason", "")),
        ]
        for t in trades[:MAX_TRADE_ROWS]
    ]
    note = ""
    if len(trades) > MAX_TRADE_ROWS:
        note = f'<p class="note">Showing the first {MAX_TRADE_ROWS:,} of {len(trades):,} trades; all are in trades.csv.</p>'
    headers = ["#", "side", "qty", "entry time", "entry", "exit time", "exit", "stop", "target",
               "fees", "funding", "net PnL", "exit reason"]
    return note + _table(headers, rows, "trades")


def _decisions_html(data: RunData) -> str:
    parts = []
    if data.decision_counts:
        rows = [[k, f"{v:,}"] for k, v in data.decision_counts.items()]
        parts.append(_table(["decision: reason", "count"], rows, "decision-counts", text=True))
    if data.decisions:
        skip = {"ts", "kind", "action", "reason"}
        rows = [
            [_iso(d.get("ts")), str(d.get("action", "")), str(d.get("reason", "")),
             ", ".join(f"{k}={_detail(v)}" for k, v in d.items() if k not in skip)]
            for d in data.decisions
        ]
        parts.append(f'<p class="note">The last {len(rows):,} decisions other than hold.</p>')
        parts.append(_table(["time", "action", "reason", "details"], rows, "decisions", text=True))
    if data.journal:
        rows = [[_iso(j.get("ts")), str(j.get("kind")), str(j.get("text") or j.get("error") or ""),
                 ", ".join(map(str, j.get("tags") or [])) if isinstance(j.get("tags"), list) else str(j.get("agent", ""))]
                for j in data.journal]
        parts.append(_table(["time", "kind", "text", "tags / agent"], rows, "journal", text=True))
    if not parts:
        if data.events_file:
            n = data.events_total
            return (f'<p class="note">No decisions recorded: events.jsonl holds {n:,} event{"" if n == 1 else "s"}, '
                    'none of them a decision (the strategy took no action in this run).</p>')
        return '<p class="note">No decisions recorded (no events.jsonl in the run directory).</p>'
    return "".join(parts)


def _data_quality_html(fields: dict[str, Any]) -> str:
    rep = fields.get("data_report")
    if not isinstance(rep, dict):
        return ""
    rows = [[str(p.get("kind")), _fmt(p.get("count"), 0), str(p.get("detail", "")), str(p.get("action", "")),
             ", ".join(map(str, p.get("examples", [])))] for p in rep.get("problems", [])]
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in rep.get("notes", []))
    head = (f"<p>{html.escape(str(rep.get('path', '')))}: {html.escape(str(rep.get('layout', '')))}, "
            f"{_fmt(rep.get('rows_read'), 0)} rows read, {_fmt(rep.get('rows_kept'), 0)} candles kept.</p>")
    table = _table(["problem", "count", "detail", "action", "first examples"], rows, "data-quality", text=True) if rows else \
        "<p>No problems found.</p>"
    return f"<h2>Input data</h2>{head}<ul>{notes}</ul>{table}"


def chart_data(data: RunData, dd_pct: np.ndarray) -> dict[str, Any]:
    """The JSON the page's script draws: downsampled candles, curves, trade marks."""
    bars, size = downsample_candles(data.candles)
    curve = downsample_curve(data.equity["ts"], data.equity["equity"], dd_pct)
    marks = []
    for t in data.trades[:MAX_TRADE_MARKS]:
        marks.append({k: t.get(k) for k in ("n", "side", "entry_ts", "entry_price", "exit_ts", "exit_price",
                                             "stop", "target", "net_pnl", "exit_reason")})
    return {"candles": bars, "bucket": size, "interval_ms": data.interval_ms, "curve": curve, "trades": marks,
            "trades_total": len(data.trades)}


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#0f1419;color:#d8dee9}
header{padding:16px 24px;background:#161b22;border-bottom:1px solid #2d333b}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
main{padding:8px 24px 40px} .sub{color:#8b949e;font-size:13px}
.metrics{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px}
.metric{background:#161b22;border:1px solid #2d333b;border-radius:6px;padding:8px 10px}
.label{font-size:11px;color:#8b949e;text-transform:uppercase;letter-spacing:.04em}
.value{font-size:18px;font-variant-numeric:tabular-nums} .pos{color:#3fb950} .neg{color:#f85149}
.chart{height:460px;background:#0f1419} .chart.small{height:240px}
table{border-collapse:collapse;font-size:12px;width:100%;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #2d333b;padding:3px 6px;text-align:right;white-space:nowrap}
th{position:sticky;top:0;background:#161b22} td:nth-child(2),th:nth-child(2){text-align:left}
table.text td,table.text th{text-align:left}
.scroll{max-height:420px;overflow:auto;border:1px solid #2d333b}
.note{color:#8b949e;font-size:12px}
"""

_SCRIPT = """
(function(){
const D = JSON.parse(document.getElementById('report-data').textContent);
function fail(){
  const where = D.plotly_local ? ' (not found at ' + D.plotly_local + ')' : '';
  document.body.insertAdjacentHTML('afterbegin', '<p class="note">The charts need plotly.js, which could not be'
    + ' loaded' + where + ' and the CDN is not reachable (offline?). For a report that works offline anywhere,'
    + ' rebuild it: LA_SYSTEM__REPORT_PLOTLY=inline laptop-agents report RUN_DIR (or run with --offline-report).</p>');
}
if (typeof Plotly !== 'undefined') { draw(); return; }
if (!D.plotly) { fail(); return; }
const s = document.createElement('script');
s.src = D.plotly.src; s.integrity = D.plotly.integrity; s.crossOrigin = 'anonymous';
s.onload = draw; s.onerror = fail;
document.head.appendChild(s);
function draw(){
const dark = {paper_bgcolor:'#0f1419', plot_bgcolor:'#0f1419', font:{color:'#d8dee9', size:11},
  margin:{l:60,r:20,t:10,b:30}, xaxis:{type:'date', gridcolor:'#2d333b', rangeslider:{visible:false}},
  yaxis:{gridcolor:'#2d333b'}, legend:{orientation:'h', y:1.06}, hovermode:'closest'};
const cfg = {displaylogo:false, responsive:true};
function lay(extra){ return Object.assign(JSON.parse(JSON.stringify(dark)), extra||{}); }
const c = D.candles, traces = [{type:'candlestick', name:'price', x:c.ts, open:c.open, high:c.high,
  low:c.low, close:c.close, increasing:{line:{color:'#3fb950'}}, decreasing:{line:{color:'#f85149'}}}];
const le={x:[],y:[],t:[]}, se={x:[],y:[],t:[]}, ex={x:[],y:[],t:[]}, st={x:[],y:[]}, tg={x:[],y:[]};
for (const t of D.trades){
  const e = (t.side==='short') ? se : le;
  e.x.push(t.entry_ts); e.y.push(t.entry_price); e.t.push('#'+t.n+' '+t.side+' entry');
  ex.x.push(t.exit_ts); ex.y.push(t.exit_price); ex.t.push('#'+t.n+' exit '+t.exit_reason+' pnl '+t.net_pnl);
  if (t.stop!==null && t.stop!==undefined){ st.x.push(t.entry_ts,t.exit_ts,null); st.y.push(t.stop,t.stop,null); }
  if (t.target!==null && t.target!==undefined){ tg.x.push(t.entry_ts,t.exit_ts,null); tg.y.push(t.target,t.target,null); }
}
traces.push({type:'scatter', mode:'lines', name:'stop', x:st.x, y:st.y, line:{color:'#f85149', dash:'dot', width:1}, hoverinfo:'skip'});
traces.push({type:'scatter', mode:'lines', name:'target', x:tg.x, y:tg.y, line:{color:'#3fb950', dash:'dot', width:1}, hoverinfo:'skip'});
traces.push({type:'scatter', mode:'markers', name:'long entry', x:le.x, y:le.y, text:le.t, hoverinfo:'text+y',
  marker:{symbol:'triangle-up', size:10, color:'#58a6ff', line:{color:'#fff', width:1}}});
traces.push({type:'scatter', mode:'markers', name:'short entry', x:se.x, y:se.y, text:se.t, hoverinfo:'text+y',
  marker:{symbol:'triangle-down', size:10, color:'#d29922', line:{color:'#fff', width:1}}});
traces.push({type:'scatter', mode:'markers', name:'exit', x:ex.x, y:ex.y, text:ex.t, hoverinfo:'text+y',
  marker:{symbol:'x', size:8, color:'#e6edf3'}});
Plotly.newPlot('price', traces, lay({yaxis:{gridcolor:'#2d333b', title:'price'}}), cfg);
const q = D.curve;
Plotly.newPlot('equity', [{type:'scatter', mode:'lines', name:'equity', x:q.ts, y:q.equity, line:{color:'#58a6ff'}}],
  lay({yaxis:{gridcolor:'#2d333b', title:'equity'}, showlegend:false}), cfg);
Plotly.newPlot('drawdown', [{type:'scatter', mode:'lines', name:'drawdown %', x:q.ts, y:q.dd_pct, fill:'tozeroy',
  line:{color:'#f85149'}}], lay({yaxis:{gridcolor:'#2d333b', title:'drawdown %'}, showlegend:false}), cfg);
}
})();
"""


def _json_for_script(obj: Any) -> str:
    text = json.dumps(obj, allow_nan=False, separators=(",", ":"), default=_json_default)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def render_report(data: RunData, summary: dict[str, Any], dd_pct: np.ndarray, *, plotly: str = "inline",
                  plotly_src: str | None = None) -> str:
    """The complete HTML document (secrets scrubbed from everything but plotly's own code).

    ``plotly`` is a mode of :data:`PLOTLY_MODES`; ``shared`` needs ``plotly_src``,
    the relative URL of the workspace's copy (written by the caller)."""
    if plotly not in PLOTLY_MODES:
        raise ValueError(f"report_plotly must be one of {', '.join(PLOTLY_MODES)}, not {plotly!r}")
    bundle = plotly_bundle()
    f = summary
    metrics = f.get("metrics", {})
    chart = _clean(chart_data(data, dd_pct))
    if plotly == "inline":
        plotly_tag = '<script type="text/javascript">' + bundle.data.decode("utf-8") + "</script>"
        chart["plotly"] = None
    else:
        plotly_tag = f'<script src="{html.escape(plotly_src)}" charset="utf-8"></script>' if plotly_src else ""
        chart["plotly"] = {"src": bundle.cdn_url, "integrity": bundle.integrity}
    chart["plotly_local"] = plotly_src
    title = f"{f.get('mode', 'run')} {f.get('run_id', data.run_dir.name)}"
    sub = " · ".join(
        html.escape(str(x)) for x in (
            f"strategy {f.get('strategy', '?')}", f.get("symbol", ""), f.get("interval", ""),
            f"{f.get('first_time') or '?'} → {f.get('last_time') or '?'}", f"{_fmt(f.get('candles'), 0)} candles",
            f"stopped: {f['reason']}" if f.get("reason") else "",
        ) if x
    )
    notes = []
    if chart["bucket"] > 1:
        notes.append(
            f"The price chart aggregates every {chart['bucket']:,} candles into one bar "
            f"({len(chart['candles']['ts']):,} bars shown for {int(data.candles['ts'].size):,} candles); "
            "equity and drawdown are drawn at most " + f"{MAX_POINTS:,} points (end-of-bucket equity, deepest drawdown)."
        )
    if len(data.trades) > MAX_TRADE_MARKS:
        notes.append(f"Trade markers are drawn for the first {MAX_TRADE_MARKS:,} trades.")
    notes.append("Net PnL is mark-to-market (final minus starting equity); Sharpe/Sortino use per-bar returns "
                 "annualised over 365 days; profit factor is n/a without a losing trade.")
    body = f"""
<header><h1>{html.escape(title)}</h1><div class="sub">{sub}</div></header>
<main>
<h2>Metrics{f" ({html.escape(str(f['currency']))})" if f.get("currency") else ""}</h2>{_metrics_html(metrics, f.get("currency"))}
<h2>Price, entries, exits, stops and targets</h2><div id="price" class="chart"></div>
<h2>Equity</h2><div id="equity" class="chart small"></div>
<h2>Drawdown</h2><div id="drawdown" class="chart small"></div>
{''.join(f'<p class="note">{html.escape(n)}</p>' for n in notes)}
<h2>Trades ({len(data.trades):,})</h2><div class="scroll">{_trades_html(data.trades)}</div>
<h2>Agents' decisions</h2><div class="scroll">{_decisions_html(data)}</div>
{_data_quality_html(f)}
</main>"""
    data_json = _json_for_script(chart)  # scrubbed as one string below
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style>"
    )
    return (
        scrub(head)
        + plotly_tag + "</head><body>"
        + scrub(body)
        + f'<script type="application/json" id="report-data">{scrub(data_json)}</script>'
        + f"<script>{_SCRIPT}</script></body></html>\n"
    )
