"""study.html: one page per study, like a run's report.html (same plotly sourcing, same look).

What it shows: the study's settings, the best trial (its parameters, its
per-fold train and test metrics, and its equity on every train and test
window, re-run from its parameters: the Engine is deterministic, so these
are the very curves the trial scored), the overfitting check, the
optimisation history (every trial's out-of-sample value and the best so
far), the parameter importances (Optuna's PED-ANOVA evaluator), the
parameters in parallel coordinates, and the leaderboard.

Figures travel as plotly JSON (traces and layout built here) in one
``<script type="application/json">`` block; tables are plain HTML, readable
and testable without running any script.
"""

from __future__ import annotations

import html
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna

from laptop_agents.backtest.research.overfit import Overfitting
from laptop_agents.backtest.research.results import Row
from laptop_agents.backtest.research.walkforward import FoldRun
from laptop_agents.fileio import write_text_atomic
from laptop_agents.logs import scrub
from laptop_agents.report.build import shared_plotly
from laptop_agents.report.html import plotly_bundle

MAX_CURVE_POINTS = 1500
MAX_TABLE_ROWS = 200

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#0f1419;color:#d8dee9}
header{padding:16px 24px;background:#161b22;border-bottom:1px solid #2d333b}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
main{padding:8px 24px 40px} .sub{color:#8b949e;font-size:13px}
.chart{height:380px;background:#0f1419}
table{border-collapse:collapse;font-size:12px;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #2d333b;padding:3px 8px;text-align:right;white-space:nowrap}
th{position:sticky;top:0;background:#161b22} td.l,th.l{text-align:left}
.scroll{max-height:480px;overflow:auto;border:1px solid #2d333b;display:inline-block;max-width:100%}
.warn{color:#d29922} .ok{color:#3fb950} .note{color:#8b949e;font-size:12px}
"""

_SCRIPT = """
(function(){
const D = JSON.parse(document.getElementById('study-data').textContent);
function fail(){
  document.body.insertAdjacentHTML('afterbegin', '<p class="note">The charts need plotly.js, which could not be'
    + ' loaded (offline?); the tables below do not.</p>');
}
function draw(){
  const base = {paper_bgcolor:'#0f1419', plot_bgcolor:'#0f1419', font:{color:'#d8dee9', size:11},
    margin:{l:60,r:20,t:10,b:40}, legend:{orientation:'h', y:1.08}, hovermode:'closest'};
  for (const f of D.figures){
    const layout = Object.assign({}, base, f.layout);
    Plotly.newPlot(f.id, f.data, layout, {displaylogo:false, responsive:true});
  }
}
if (typeof Plotly !== 'undefined') { draw(); return; }
if (!D.plotly) { fail(); return; }
const s = document.createElement('script');
s.src = D.plotly.src; s.integrity = D.plotly.integrity; s.crossOrigin = 'anonymous';
s.onload = draw; s.onerror = fail; document.head.appendChild(s);
})();
"""

_GRID = {"gridcolor": "#2d333b"}


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:,.{digits}g}" if abs(v) < 1e-3 or abs(v) >= 1e6 else f"{v:,.{digits}f}".rstrip("0").rstrip(".")
    return str(v)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: Sequence[int] = (), table_id: str = "") -> str:
    def cell(tag: str, i: int, v: Any) -> str:
        cls = ' class="l"' if i in left else ""
        return f"<{tag}{cls}>{html.escape(v if isinstance(v, str) else _fmt(v))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _thin(xs: Sequence[Any], limit: int = MAX_CURVE_POINTS) -> list[Any]:
    step = max(1, math.ceil(len(xs) / limit))
    out = list(xs[::step])
    if xs and (len(xs) - 1) % step:
        out.append(xs[-1])
    return out


def history_figure(study: optuna.Study) -> dict[str, Any]:
    trials = sorted(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)),
                    key=lambda t: t.number)
    ok = [t for t in trials if t.user_attrs.get("feasible")]
    bad = [t for t in trials if not t.user_attrs.get("feasible")]
    best_x: list[int] = []
    best_y: list[float] = []
    best = -math.inf
    for t in ok:
        if t.value is not None and t.value > best:
            best = t.value
        best_x.append(t.number)
        best_y.append(best)
    return {"id": "history", "layout": {"xaxis": {"title": "trial", **_GRID}, "yaxis": {"title": "out-of-sample value", **_GRID}},
            "data": [
                {"type": "scatter", "mode": "markers", "name": "feasible", "x": [t.number for t in ok],
                 "y": [t.value for t in ok], "marker": {"color": "#58a6ff", "size": 7}},
                {"type": "scatter", "mode": "markers", "name": "infeasible (constraints)", "x": [t.number for t in bad],
                 "y": [t.value for t in bad], "marker": {"color": "#8b949e", "size": 6, "symbol": "x"}},
                {"type": "scatter", "mode": "lines", "name": "best so far", "x": best_x, "y": best_y,
                 "line": {"color": "#3fb950", "shape": "hv"}},
            ]}


def importances(study: optuna.Study) -> dict[str, float]:
    """Parameter importances (PED-ANOVA, Optuna's default); empty when they cannot be computed
    (fewer than a handful of complete trials, or no parameter varies)."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 3:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (ValueError, RuntimeError, ZeroDivisionError, FloatingPointError):
        return {}


def importance_figure(imp: Mapping[str, float]) -> dict[str, Any]:
    names = list(imp)[::-1]
    return {"id": "importance", "layout": {"xaxis": {"title": "importance", **_GRID}, "yaxis": {"automargin": True},
                                           "margin": {"l": 260, "r": 20, "t": 10, "b": 40}},
            "data": [{"type": "bar", "orientation": "h", "x": [imp[n] for n in names], "y": names,
                      "marker": {"color": "#58a6ff"}}]}


def parallel_figure(rows: Sequence[Row]) -> dict[str, Any]:
    complete = [r for r in rows if r.state == "COMPLETE" and r.value is not None]
    names = sorted({n for r in complete for n in r.params})
    dims: list[dict[str, Any]] = []
    for n in names:
        vals = [r.params.get(n) for r in complete]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            dims.append({"label": n.split(".")[-1] if len(n) > 24 else n, "values": vals})
        else:
            cats = list(dict.fromkeys(str(v) for v in vals))
            dims.append({"label": n.split(".")[-1] if len(n) > 24 else n, "values": [cats.index(str(v)) for v in vals],
                         "tickvals": list(range(len(cats))), "ticktext": cats})
    values = [r.value for r in complete]
    dims.append({"label": "value", "values": values})
    return {"id": "parallel", "layout": {"margin": {"l": 80, "r": 80, "t": 40, "b": 30}},
            "data": [{"type": "parcoords", "dimensions": dims,
                      "line": {"color": values, "colorscale": "Viridis", "showscale": True}}]}


def equity_figure(runs: Sequence[FoldRun], ts_of: Any) -> dict[str, Any]:
    """The best trial's equity on each train window (blue) and test window (orange), as returns in
    percent of each window's starting equity, so windows compare."""
    data: list[dict[str, Any]] = []
    for r in runs:
        for kind, res, (a, b), color in (("train", r.train_result, r.fold.train, "#58a6ff"),
                                         ("test", r.test_result, r.fold.test, "#d29922")):
            if res is None or not len(res.equity):
                continue
            start = res.starting_equity or 1.0
            eq = [(e / start - 1.0) * 100.0 for e in res.equity]
            xs = ts_of(a, b)
            n = min(len(xs), len(eq))
            data.append({"type": "scatter", "mode": "lines", "name": f"fold {r.fold.index} {kind}",
                         "x": _thin(xs[:n]), "y": [round(v, 5) for v in _thin(eq[:n])],
                         "line": {"color": color, "width": 1.5}, "legendgroup": kind})
    return {"id": "equity", "layout": {"xaxis": {"type": "date", **_GRID},
                                       "yaxis": {"title": "return % of the window", **_GRID}}, "data": data}


def render(doc: Mapping[str, Any], figures: Sequence[Mapping[str, Any]], rows: Sequence[Row], over: Overfitting, *,
           plotly: str, plotly_src: str | None) -> str:
    bundle = plotly_bundle()
    best = doc.get("best") or {}
    counts = doc.get("counts") or {}
    sub = " · ".join(html.escape(str(x)) for x in (
        f"strategy {doc.get('strategy')}", doc.get("symbol"), doc.get("interval"), doc.get("source"),
        f"storage {doc.get('storage')}", f"metric {doc.get('metric')}",
        f"{counts.get('complete', 0)} complete, {counts.get('pruned', 0)} pruned, {counts.get('fail', 0)} failed trials",
    ) if x)
    parts = [f"<header><h1>study {html.escape(str(doc.get('study')))}</h1><div class=\"sub\">{sub}</div></header><main>"]
    parts.append("<h2>Settings</h2>" + _table(["setting", "value"], [[k, str(v)] for k, v in (doc.get("settings") or {}).items()],
                                              left=(0, 1), table_id="settings"))
    if best:
        parts.append(f"<h2>Best trial: #{best.get('trial')}</h2>")
        parts.append(_table(["parameter", "value"], [[k, v] for k, v in (best.get("params") or {}).items()],
                            left=(0,), table_id="best-params"))
        fold_rows = []
        for f in best.get("folds") or []:
            tr, te = f["train"], f["test"]
            fold_rows.append([f["fold"], tr.get("sharpe"), te.get("sharpe"), tr.get("return_pct"), te.get("return_pct"),
                              tr.get("trades"), te.get("trades"), te.get("max_drawdown_pct")])
        parts.append("<p></p>" + _table(["fold", "train Sharpe", "test Sharpe", "train ret %", "test ret %",
                                          "train trades", "test trades", "test max DD %"], fold_rows, table_id="best-folds"))
        parts.append("<h2>Best trial's equity on the train (blue) and test (orange) windows</h2>"
                     "<div id=\"equity\" class=\"chart\"></div>")
    else:
        parts.append("<h2>Best trial</h2><p class=\"warn\">No complete trial meets the constraints yet.</p>")
    parts.append("<h2>Overfitting check</h2>")
    parts.append(_table(["measure", "value"], [
        ["trials tried", over.trials], [f"in-sample {over.metric}", over.in_sample],
        [f"out-of-sample {over.metric}", over.out_of_sample], ["deflated Sharpe ratio", over.dsr],
        ["per-bar Sharpe (best, out of sample)", over.sharpe_bar],
        ["expected best per-bar Sharpe of as many skill-less trials", over.sharpe_benchmark],
        ["probability of backtest overfitting", over.pbo], ["CSCV block combinations", over.pbo_combinations],
    ], left=(0,), table_id="overfitting"))
    if over.warnings:
        parts.extend(f'<p class="warn">⚠ {html.escape(w)}</p>' for w in over.warnings)
    else:
        parts.append('<p class="ok">No sign of overfitting by these measures.</p>')
    parts.append('<p class="note">Deflated Sharpe ratio: Bailey and López de Prado (2014); probability of backtest '
                 'overfitting by CSCV over 16 blocks of the pooled test bars: Bailey, Borwein, López de Prado and Zhu '
                 '(2017).</p>')
    parts.append('<h2>Optimisation history</h2><div id="history" class="chart"></div>')
    if any(f["id"] == "importance" for f in figures):
        parts.append('<h2>Parameter importances</h2><div id="importance" class="chart"></div>')
    parts.append('<h2>Parameters of the complete trials</h2><div id="parallel" class="chart"></div>')
    names = sorted({n for r in rows for n in r.params})
    lb = [[i, r.number, r.state.lower(), r.value, r.train_value, r.trades, r.worst_drawdown_pct, r.feasible,
           *(r.params.get(n) for n in names), r.note] for i, r in enumerate(rows[:MAX_TABLE_ROWS], 1)]
    parts.append(f"<h2>Leaderboard ({len(rows):,} trials{', first ' + str(MAX_TABLE_ROWS) if len(rows) > MAX_TABLE_ROWS else ''})</h2>")
    parts.append('<div class="scroll">' + _table(
        ["#", "trial", "state", "value", "train value", "test trades", "worst test DD %", "feasible", *names, "note"],
        lb, left=(2, len(names) + 8), table_id="leaderboard") + "</div></main>")
    payload: dict[str, Any] = {"figures": list(figures)}
    if plotly == "inline":
        tag = '<script type="text/javascript">' + bundle.data.decode("utf-8") + "</script>"
        payload["plotly"] = None
    else:
        tag = f'<script src="{html.escape(plotly_src)}" charset="utf-8"></script>' if plotly_src else ""
        payload["plotly"] = {"src": bundle.cdn_url, "integrity": bundle.integrity}
    data = json.dumps(_clean(payload), allow_nan=False, separators=(",", ":")).replace("</", "<\\/")
    title = html.escape(f"study {doc.get('study')}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style>'
            + tag + "</head><body>" + scrub("".join(parts))
            + f'<script type="application/json" id="study-data">{scrub(data)}</script>'
            + f"<script>{_SCRIPT}</script></body></html>\n")


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_study_report(path: Path, study: optuna.Study, doc: Mapping[str, Any], rows: Sequence[Row],
                       best_runs: Sequence[FoldRun], over: Overfitting, ts_of: Any, *, plotly: str = "shared") -> Path:
    """Write study.html into a run directory (``plotly``: shared, inline or cdn, as for run reports)."""
    figures: list[dict[str, Any]] = [history_figure(study), parallel_figure(rows)]
    imp = importances(study)
    if imp:
        figures.append(importance_figure(imp))
    if best_runs:
        figures.append(equity_figure(best_runs, ts_of))
    src = shared_plotly(path.parent) if plotly == "shared" else None
    mode = "inline" if plotly == "shared" and src is None else plotly
    write_text_atomic(path, render(doc, figures, rows, over, plotly=mode, plotly_src=src))
    return path
